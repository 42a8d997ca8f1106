package apps

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
)

// maxRuleLength bounds a custom health rule's expression, as the agent does.
const maxRuleLength = 8 << 10

// healthRuleDoc is one entry of spec.health.customRules.
type healthRuleDoc struct {
	Group string `json:"group,omitempty"`
	Kind  string `json:"kind"`
	CEL   string `json:"cel"`
}

// ruleEnv mirrors the agent's CEL environment for health rules (agent/internal/health): the
// hub checks that a rule compiles and returns a map, the agent evaluates it. Hub and agent
// never import each other, so the two declarations must be kept alike.
var ruleEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("object", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
})

// healthRules converts and checks spec.health.customRules: a kind and an expression each, at
// most one rule per group and kind, and every expression compiles to a map.
func healthRules(docs []healthRuleDoc, errAt errorf) ([]HealthRule, []error) {
	var rules []HealthRule
	var errs []error
	seen := map[string]bool{}
	for i, d := range docs {
		field := fmt.Sprintf("spec.health.customRules[%d]", i)
		r := HealthRule{Group: strings.TrimSpace(d.Group), Kind: strings.TrimSpace(d.Kind), Expression: d.CEL}
		if r.Kind == "" {
			errs = append(errs, errAt(field+".kind", ErrRequired))
			continue
		}
		key := r.Group + "/" + r.Kind
		if seen[key] {
			errs = append(errs, errAt(field, fmt.Errorf("a rule for group %q kind %q is already defined", r.Group, r.Kind)))
			continue
		}
		seen[key] = true
		if err := checkRule(r.Expression); err != nil {
			errs = append(errs, errAt(field+".cel", err))
			continue
		}
		rules = append(rules, r)
	}
	return rules, errs
}

func checkRule(expr string) error {
	if strings.TrimSpace(expr) == "" {
		return ErrRequired
	}
	if len(expr) > maxRuleLength {
		return fmt.Errorf("longer than %d bytes", maxRuleLength)
	}
	env, err := ruleEnv()
	if err != nil {
		return fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	t := ast.OutputType()
	switch {
	case t.Kind() == cel.DynKind:
	case t.Kind() == cel.MapKind && (t.Parameters()[0].Kind() == cel.StringKind || t.Parameters()[0].Kind() == cel.DynKind):
	default:
		return fmt.Errorf(`returns %s, want a map such as {"status": "Healthy", "message": "..."}`, t)
	}
	return nil
}
