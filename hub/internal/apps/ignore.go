package apps

import (
	"errors"
	"fmt"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// checkIgnoreDifferences checks each rule of spec.ignoreDifferences; an error names the entry
// and its field ("spec.ignoreDifferences[1].jsonPointers[0]").
func checkIgnoreDifferences(rules []ignore.Rule, errAt errorf) []error {
	var errs []error
	for i, r := range rules {
		for _, err := range r.Check() {
			field := fmt.Sprintf("spec.ignoreDifferences[%d]", i)
			var fe *ignore.FieldError
			if errors.As(err, &fe) {
				field += "." + fe.Field
				err = fe.Err
			}
			errs = append(errs, errAt(field, err))
		}
	}
	return errs
}

// ParseIgnoreDifferences reads the hub's default ignoreDifferences (flotilla hub
// --ignore-differences FILE): a YAML list of rules in the syntax of spec.ignoreDifferences,
// decoded strictly. An error names the file, the entry and the field.
func ParseIgnoreDifferences(file string, data []byte) ([]ignore.Rule, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var rules []ignore.Rule
	strict, err := sigsjson.UnmarshalStrict(j, &rules, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: want a list of ignoreDifferences rules: %w", file, trimJSONPrefix(err))
	}
	var errs []error
	for _, e := range strict {
		errs = append(errs, fmt.Errorf("%s: %w", file, trimJSONPrefix(e)))
	}
	for i, r := range rules {
		for _, e := range r.Check() {
			errs = append(errs, fmt.Errorf("%s: [%d].%w", file, i, e))
		}
	}
	return rules, errors.Join(errs...)
}
