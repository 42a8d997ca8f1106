// Package ignore is spec.ignoreDifferences, in Argo CD's syntax: rules naming fields of some
// objects (by JSON pointer, jq path expression, or the field managers that own them) that are
// not drift. The hub checks the rules (Check); the agent compiles them (Compile) and removes
// the fields they name before comparing (Normalize), or takes them from the live object before
// applying (Respect).
package ignore

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/itchyny/gojq"
)

// Rule is one entry of spec.ignoreDifferences. Group and Kind may be globs ("*"); an empty Name
// or Namespace matches any.
type Rule struct {
	Group                 string   `json:"group,omitempty"`
	Kind                  string   `json:"kind"`
	Name                  string   `json:"name,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	JSONPointers          []string `json:"jsonPointers,omitempty"`
	JQPathExpressions     []string `json:"jqPathExpressions,omitempty"`
	ManagedFieldsManagers []string `json:"managedFieldsManagers,omitempty"`
}

// FieldError is a problem with one field of a rule, e.g. "jsonPointers[1]".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Check reports every problem of r: a missing kind, a bad glob, a JSON pointer that is not
// one, a jq expression that does not compile, an empty manager name, or a rule that names no
// field at all.
func (r Rule) Check() []error {
	var errs []error
	if r.Kind == "" {
		errs = append(errs, &FieldError{"kind", errors.New("required")})
	}
	for field, glob := range map[string]string{"group": r.Group, "kind": r.Kind} {
		if _, err := path.Match(glob, ""); err != nil {
			errs = append(errs, &FieldError{field, fmt.Errorf("%q is not a valid glob: %w", glob, err)})
		}
	}
	for i, p := range r.JSONPointers {
		if _, err := ParsePointer(p); err != nil {
			errs = append(errs, &FieldError{fmt.Sprintf("jsonPointers[%d]", i), err})
		}
	}
	for i, q := range r.JQPathExpressions {
		if _, err := compileJQ(q); err != nil {
			errs = append(errs, &FieldError{fmt.Sprintf("jqPathExpressions[%d]", i), err})
		}
	}
	for i, m := range r.ManagedFieldsManagers {
		if strings.TrimSpace(m) == "" {
			errs = append(errs, &FieldError{fmt.Sprintf("managedFieldsManagers[%d]", i), errors.New("empty manager name")})
		}
	}
	if len(r.JSONPointers)+len(r.JQPathExpressions)+len(r.ManagedFieldsManagers) == 0 {
		errs = append(errs, &FieldError{"jsonPointers", errors.New("the rule names no field: set jsonPointers, jqPathExpressions or managedFieldsManagers")})
	}
	return errs
}

// Matches reports whether r applies to the object of group, kind, namespace and name.
func (r Rule) Matches(group, kind, namespace, name string) bool {
	return glob(r.Group, group) && glob(r.Kind, kind) &&
		(r.Name == "" || r.Name == name) && (r.Namespace == "" || r.Namespace == namespace)
}

func glob(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// ParsePointer splits a JSON pointer (RFC 6901) into its unescaped tokens. The empty pointer
// (the whole object) is refused: an object is never wholly ignored.
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("%q: the whole object cannot be ignored", p)
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%q is not a JSON pointer: it must start with \"/\"", p)
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, fmt.Errorf("%q is not a JSON pointer: \"~\" must be followed by 0 or 1", p)
			}
		}
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// jqTimeout bounds one run of a jq expression on one object.
const jqTimeout = time.Second

// jq is a compiled jq path expression: del removes what it selects; take replaces it by what
// it selects in $live.
type jq struct {
	expr      string
	del, take *gojq.Code
}

// compileJQ compiles a jq path expression in both uses.
func compileJQ(expr string) (*jq, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("empty expression")
	}
	compile := func(src string, vars ...string) (*gojq.Code, error) {
		q, err := gojq.Parse(src)
		if err != nil {
			return nil, err
		}
		return gojq.Compile(q, gojq.WithVariables(vars))
	}
	// Parse the expression alone first, so that an error names it and not the wrapper.
	if _, err := gojq.Parse(expr); err != nil {
		return nil, fmt.Errorf("%q does not compile: %w", expr, err)
	}
	del, err := compile("del(" + expr + ")")
	if err != nil {
		return nil, fmt.Errorf("%q does not compile: %w", expr, err)
	}
	take, err := compile("[$live | path("+expr+")] as $ps | del("+expr+") | reduce $ps[] as $p (.; setpath($p; $live | getpath($p)))", "$live")
	if err != nil {
		return nil, fmt.Errorf("%q does not compile: %w", expr, err)
	}
	return &jq{expr: expr, del: del, take: take}, nil
}

// run runs code on obj (with $live when given) and returns its one result; an error (such as
// iterating over a field the object lacks) means the expression selects nothing: obj is
// returned unchanged.
func (q *jq) run(code *gojq.Code, obj map[string]any, live ...any) map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), jqTimeout)
	defer cancel()
	iter := code.RunWithContext(ctx, toJQ(obj), live...)
	v, ok := iter.Next()
	if !ok {
		return obj
	}
	if _, isErr := v.(error); isErr {
		return obj
	}
	m, ok := fromJQ(v).(map[string]any)
	if !ok {
		return obj
	}
	return m
}

// toJQ converts an unstructured value to what gojq takes (int64 → int).
func toJQ(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = toJQ(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJQ(e)
		}
		return out
	case int64:
		return int(x)
	case int32:
		return int(x)
	default:
		return v
	}
}

// fromJQ converts gojq's result back to an unstructured value (int → int64).
func fromJQ(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = fromJQ(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = fromJQ(e)
		}
		return x
	case int:
		return int64(x)
	default:
		return v
	}
}
