package health

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Rule is a custom health rule for the objects of one group and kind, for the custom resources
// users own: a CEL expression (github.com/google/cel-go) over `object`, the object as a map,
// returning a map with "status" (one of the health states) and "message". For example:
//
//	has(object.status) && has(object.status.phase) && object.status.phase == "Ready"
//	  ? {"status": "Healthy", "message": "ready"}
//	  : {"status": "Progressing", "message": "waiting for phase Ready"}
//
// A custom rule replaces the built-in assessment of its kind; objects being deleted stay
// Progressing whatever the rule says.
type Rule struct {
	Group      string // "" for the core group
	Kind       string
	Expression string
}

// String names the rule's kind as "Kind.group" ("Kind" for the core group).
func (r Rule) String() string {
	if r.Group == "" {
		return r.Kind
	}
	return r.Kind + "." + r.Group
}

// Bounds of a custom rule.
const (
	// MaxExpressionLength bounds an expression's length in bytes.
	MaxExpressionLength = 8 << 10
	// maxCost bounds one evaluation (CEL's runtime cost units: about one per operation).
	maxCost = 1_000_000
)

// Assessor assesses objects by their custom rules, compiled once, and by the built-in rules
// for every other kind. A nil *Assessor applies the built-in rules only. It is safe for
// concurrent use.
type Assessor struct {
	rules map[string]*compiledRule // by group/kind
}

type compiledRule struct {
	rule Rule
	prg  cel.Program // nil when the rule does not compile
	err  error
}

// NewAssessor compiles rules. The error names every rule that does not compile (or repeats the
// kind of an earlier rule, or has no kind). The Assessor is returned even then: objects of a
// kind whose rule does not compile are Unknown with the rule's error as message, so a broken
// rule shows where it matters and never lets the built-in rules quietly stand in for it.
func NewAssessor(rules []Rule) (*Assessor, error) {
	a := &Assessor{rules: make(map[string]*compiledRule, len(rules))}
	var errs []error
	for i, r := range rules {
		key := r.Group + "/" + r.Kind
		if r.Kind == "" {
			errs = append(errs, fmt.Errorf("health rule %d: no kind", i+1))
			continue
		}
		if _, dup := a.rules[key]; dup {
			errs = append(errs, fmt.Errorf("health rule for %s: more than one rule for this kind", r))
			continue
		}
		prg, err := compile(r.Expression)
		if err != nil {
			err = fmt.Errorf("health rule for %s: %w", r, err)
			errs = append(errs, err)
		}
		a.rules[key] = &compiledRule{rule: r, prg: prg, err: err}
	}
	return a, errors.Join(errs...)
}

// Assess returns the health of obj and a message for people. A nil obj is Missing.
func (a *Assessor) Assess(obj *unstructured.Unstructured) (Status, string) {
	if obj == nil {
		return Missing, "not found"
	}
	if obj.GetDeletionTimestamp() != nil {
		return Progressing, "being deleted"
	}
	if a != nil {
		gvk := obj.GroupVersionKind()
		if r := a.rules[gvk.Group+"/"+gvk.Kind]; r != nil {
			return r.eval(obj)
		}
	}
	return builtin(obj)
}

// celEnv is the environment every rule compiles in: `object` is a map from string to anything.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("object", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
})

func compile(expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("no expression")
	}
	if len(expr) > MaxExpressionLength {
		return nil, fmt.Errorf("expression longer than %d bytes", MaxExpressionLength)
	}
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !returnsMap(t) {
		return nil, fmt.Errorf(`returns %s, want a map such as {"status": "Healthy", "message": "..."}`, t)
	}
	return env.Program(ast, cel.CostLimit(maxCost), cel.InterruptCheckFrequency(100))
}

func returnsMap(t *cel.Type) bool {
	switch t.Kind() {
	case cel.DynKind:
		return true
	case cel.MapKind:
		k := t.Parameters()[0].Kind()
		return k == cel.StringKind || k == cel.DynKind
	default:
		return false
	}
}

var mapType = reflect.TypeFor[map[string]any]()

func (r *compiledRule) eval(obj *unstructured.Unstructured) (Status, string) {
	if r.err != nil {
		return Unknown, r.err.Error()
	}
	// Integers as int64, as the API client decodes them, whatever decoded obj.
	out, _, err := r.prg.Eval(map[string]any{"object": normalized(obj).Object})
	if err != nil {
		return Unknown, fmt.Sprintf("health rule for %s: %v", r.rule, err)
	}
	native, err := out.ConvertToNative(mapType)
	if err != nil {
		return Unknown, fmt.Sprintf("health rule for %s: returned %v, want a map", r.rule, out.Type())
	}
	m := native.(map[string]any)
	s, _ := m["status"].(string)
	if !Valid(Status(s)) {
		return Unknown, fmt.Sprintf("health rule for %s: status %q is not one of Healthy, Progressing, Degraded, Suspended, Missing, Unknown", r.rule, s)
	}
	msg, ok := m["message"].(string)
	if !ok && m["message"] != nil {
		msg = fmt.Sprint(m["message"])
	}
	return Status(s), msg
}
