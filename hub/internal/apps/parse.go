package apps

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// API versions of the Application kinds Parse reads.
const (
	FlotillaAPIVersion = "flotilla.dev/v1alpha1"
	ArgoCDAPIVersion   = "argoproj.io/v1alpha1"
	Kind               = "Application"
)

// Error is a problem with one Application manifest, naming the file, the application (or the
// document, when its name is unknown) and the field.
type Error struct {
	File  string
	App   string // empty when the document has no usable name
	Doc   int    // 1-based position of the document in a multi-document file
	Field string // e.g. "spec.source.repoURL"; empty for the whole document
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.App != "" {
		fmt.Fprintf(&b, ": Application %q", e.App)
	} else if e.Doc > 0 {
		fmt.Fprintf(&b, ": document %d", e.Doc)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrRequired is wrapped by the errors of missing required fields.
var ErrRequired = errors.New("required")

// header is what every document is first decoded into, to pick the decoder.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// Parse reads the Application documents of one file: a multi-document YAML stream, or one
// JSON document when file ends in ".json". Documents of other kinds are skipped. A bad
// document yields an error and never hides the good ones.
func Parse(file string, data []byte) ([]*Application, []error) {
	docs, err := splitDocs(file, data)
	var errs []error
	if err != nil {
		errs = append(errs, &Error{File: file, Err: err})
	}
	var apps []*Application
	for i, doc := range docs {
		app, docErrs := parseDoc(file, i+1, doc)
		if len(docErrs) > 0 {
			errs = append(errs, docErrs...)
			continue
		}
		if app != nil {
			apps = append(apps, app)
		}
	}
	return apps, errs
}

// splitDocs returns the JSON form of each non-empty document; on a syntax error it returns
// the documents before it.
func splitDocs(file string, data []byte) ([][]byte, error) {
	if strings.HasSuffix(file, ".json") {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, nil
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return [][]byte{data}, nil
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", n, err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", n, err)
		}
		docs = append(docs, j) // "null" for an empty document, skipped by parseDoc
	}
}

// errorf makes the *Error of one field of the document being parsed.
type errorf func(field string, err error) error

// parseDoc decodes one JSON document; it returns nil, nil for a document that is not an
// Application of a kind Flotilla reads.
func parseDoc(file string, n int, doc []byte) (*Application, []error) {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil // empty, a scalar or a list: not ours
	}
	var h header
	if err := yaml.Unmarshal(doc, &h); err != nil {
		// apiVersion or kind of the wrong type: not an object we know either.
		return nil, nil
	}
	if h.Kind != Kind {
		return nil, nil
	}
	errAt := func(field string, err error) error {
		return &Error{File: file, App: h.Metadata.Name, Doc: n, Field: field, Err: err}
	}
	switch {
	case h.APIVersion == FlotillaAPIVersion:
		return parseFlotilla(file, doc, h, errAt)
	case h.APIVersion == ArgoCDAPIVersion:
		return parseArgoCD(file, doc, h, errAt)
	case strings.HasPrefix(h.APIVersion, "flotilla.dev/"):
		return nil, []error{errAt("apiVersion", fmt.Errorf("%q is not supported, use %q", h.APIVersion, FlotillaAPIVersion))}
	default:
		return nil, nil // someone else's Application
	}
}
