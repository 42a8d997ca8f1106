package ignore

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Set is a compiled list of rules, safe for concurrent use.
type Set struct {
	rules []*compiled
}

type compiled struct {
	Rule
	pointers [][]string
	jqs      []*jq
}

// Compile compiles rules; an error names the first bad rule by its index and field.
func Compile(rules []Rule) (*Set, error) {
	s := &Set{}
	for i, r := range rules {
		if errs := r.Check(); len(errs) > 0 {
			return nil, fmt.Errorf("ignoreDifferences[%d].%w", i, errs[0])
		}
		c := &compiled{Rule: r}
		for _, p := range r.JSONPointers {
			tokens, _ := ParsePointer(p)
			c.pointers = append(c.pointers, tokens)
		}
		for _, e := range r.JQPathExpressions {
			q, _ := compileJQ(e)
			c.jqs = append(c.jqs, q)
		}
		s.rules = append(s.rules, c)
	}
	return s, nil
}

// Fields are the rules of a Set that apply to one object; nil when none does.
type Fields struct {
	rules []*compiled
}

// For returns the rules of s that apply to the object of group, kind, namespace and name, nil
// when none does (or s is nil).
func (s *Set) For(group, kind, namespace, name string) *Fields {
	if s == nil {
		return nil
	}
	var f Fields
	for _, r := range s.rules {
		if r.Matches(group, kind, namespace, name) {
			f.rules = append(f.rules, r)
		}
	}
	if len(f.rules) == 0 {
		return nil
	}
	return &f
}

// managers lists the managers the rules name.
func (f *Fields) managers() []string {
	var out []string
	for _, r := range f.rules {
		out = append(out, r.ManagedFieldsManagers...)
	}
	return out
}

// Normalize returns a copy of obj without the fields the rules name. managed is the live
// object's metadata.managedFields: the fields it says the named managers own are removed. A nil
// f returns obj itself.
func (f *Fields) Normalize(obj map[string]any, managed []metav1.ManagedFieldsEntry) map[string]any {
	if f == nil {
		return obj
	}
	out := runtime.DeepCopyJSON(obj)
	for _, r := range f.rules {
		for _, p := range r.pointers {
			out = removePointer(out, p).(map[string]any)
		}
		for _, q := range r.jqs {
			out = q.run(q.del, out)
		}
	}
	for _, p := range ownedBy(managed, f.managers()) {
		out = removePath(out, p).(map[string]any)
	}
	return out
}

// Respect returns a copy of target (what would be applied) whose ignored fields are left as
// they are in live, so that applying it does not change them: a field a JSON pointer or jq
// expression names gets live's value (or is dropped when live lacks it), and a field the named
// managers own in live (per managed, its managedFields) is dropped, which leaves it to them.
func (f *Fields) Respect(target, live map[string]any, managed []metav1.ManagedFieldsEntry) map[string]any {
	if f == nil {
		return target
	}
	out := runtime.DeepCopyJSON(target)
	for _, r := range f.rules {
		for _, p := range r.pointers {
			if v, ok := getPointer(live, p); ok {
				out = setPointer(out, p, runtime.DeepCopyJSONValue(v)).(map[string]any)
			} else {
				out = removePointer(out, p).(map[string]any)
			}
		}
		for _, q := range r.jqs {
			out = q.run(q.take, out, toJQ(runtime.DeepCopyJSON(live)))
		}
	}
	for _, p := range ownedBy(managed, f.managers()) {
		out = removePath(out, p).(map[string]any)
	}
	return out
}

// getPointer returns the value at tokens in v.
func getPointer(v any, tokens []string) (any, bool) {
	for _, t := range tokens {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[t]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// removePointer returns v without the value at tokens (v itself when there is none).
func removePointer(v any, tokens []string) any {
	if len(tokens) == 0 {
		return v
	}
	t, rest := tokens[0], tokens[1:]
	switch x := v.(type) {
	case map[string]any:
		child, ok := x[t]
		if !ok {
			return v
		}
		if len(rest) == 0 {
			delete(x, t)
		} else {
			x[t] = removePointer(child, rest)
		}
	case []any:
		i, err := strconv.Atoi(t)
		if err != nil || i < 0 || i >= len(x) {
			return v
		}
		if len(rest) == 0 {
			return slices.Delete(x, i, i+1)
		}
		x[i] = removePointer(x[i], rest)
	}
	return v
}

// setPointer returns v with val at tokens, making the maps on the way that v lacks; a list
// index v lacks sets nothing.
func setPointer(v any, tokens []string, val any) any {
	if len(tokens) == 0 {
		return val
	}
	t, rest := tokens[0], tokens[1:]
	switch x := v.(type) {
	case map[string]any:
		child, ok := x[t]
		if !ok && len(rest) > 0 {
			child = map[string]any{}
		}
		x[t] = setPointer(child, rest, val)
	case []any:
		i, err := strconv.Atoi(t)
		if err == nil && i >= 0 && i < len(x) {
			x[i] = setPointer(x[i], rest, val)
		}
	case nil:
		return setPointer(map[string]any{}, tokens, val)
	}
	return v
}

// ownedBy returns the leaf fields that the managers own according to managed.
func ownedBy(managed []metav1.ManagedFieldsEntry, managers []string) []fieldpath.Path {
	if len(managers) == 0 {
		return nil
	}
	set := &fieldpath.Set{}
	for _, e := range managed {
		if !slices.Contains(managers, e.Manager) || e.FieldsV1 == nil {
			continue
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
			continue
		}
		set = set.Union(s)
	}
	var out []fieldpath.Path
	set.Leaves().Iterate(func(p fieldpath.Path) { out = append(out, p.Copy()) })
	return out
}

// removePath returns v without the field p names (v itself when there is none).
func removePath(v any, p fieldpath.Path) any {
	if len(p) == 0 {
		return v
	}
	pe, rest := p[0], p[1:]
	switch x := v.(type) {
	case map[string]any:
		if pe.FieldName == nil {
			return v
		}
		child, ok := x[*pe.FieldName]
		if !ok {
			return v
		}
		if len(rest) == 0 {
			delete(x, *pe.FieldName)
		} else {
			x[*pe.FieldName] = removePath(child, rest)
		}
	case []any:
		i := listIndex(x, pe)
		if i < 0 {
			return v
		}
		if len(rest) == 0 {
			return slices.Delete(x, i, i+1)
		}
		x[i] = removePath(x[i], rest)
	}
	return v
}

// listIndex finds the element of list that pe selects (by key fields, value or index); -1
// when none.
func listIndex(list []any, pe fieldpath.PathElement) int {
	switch {
	case pe.Index != nil:
		if *pe.Index >= 0 && *pe.Index < len(list) {
			return *pe.Index
		}
	case pe.Value != nil:
		want := (*pe.Value).Unstructured()
		for i, e := range list {
			if sameScalar(e, want) {
				return i
			}
		}
	case pe.Key != nil:
		for i, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				continue
			}
			match := true
			for _, f := range *pe.Key {
				if !sameScalar(m[f.Name], f.Value.Unstructured()) {
					match = false
					break
				}
			}
			if match {
				return i
			}
		}
	}
	return -1
}

// sameScalar compares two decoded values, numbers of any Go type by value.
func sameScalar(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}
