package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
)

// healthOptions are the flags of `flotilla-agent health`.
type healthOptions struct {
	File   string
	Output string
	Rules  string
}

// Output formats of `flotilla-agent health`.
const (
	outputTable = "table"
	outputJSON  = "json"
)

func (o *healthOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.File, "filename", "f", o.File, "YAML file of the objects to assess, as 'kubectl get -o yaml' prints them (- for standard input)")
	fs.StringVarP(&o.Output, "output", "o", o.Output, "table or json")
	fs.StringVar(&o.Rules, "rules", o.Rules, "YAML file of custom health rules: a list of {group, kind, cel}, as in an Application's spec.health.customRules")
}

func (o *healthOptions) Validate() error {
	var errs []error
	if o.File == "" {
		errs = append(errs, errors.New("-f is required"))
	}
	if o.Output != outputTable && o.Output != outputJSON {
		errs = append(errs, fmt.Errorf("-o %q: want table or json", o.Output))
	}
	return errors.Join(errs...)
}

// newHealthCommand returns `flotilla-agent health`: the agent's health rules run offline on
// objects saved in a file, without a cluster.
func newHealthCommand() *cobra.Command {
	o := &healthOptions{Output: outputTable}
	cmd := &cobra.Command{
		Use:   "health -f FILE [-o json] [--rules FILE]",
		Short: "Assess the health of the objects in a YAML file, offline",
		Long: `Assess the objects of a YAML file (several documents, or a List as kubectl prints it) with
the rules the agent uses, and print each object's health and message. Nothing is read from a
cluster: the objects' status is taken as written in the file. --rules adds custom CEL rules,
to try them before putting them in an Application.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.run(cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// assessed is one line of the output.
type assessed struct {
	Object  string        `json:"object"`
	Status  health.Status `json:"status"`
	Message string        `json:"message"`
}

func (o *healthOptions) run(stdin io.Reader, out io.Writer) error {
	var rules []health.Rule
	if o.Rules != "" {
		var err error
		if rules, err = readRules(o.Rules); err != nil {
			return err
		}
	}
	assessor, err := health.NewAssessor(rules)
	if err != nil {
		return fmt.Errorf("--rules %s: %w", o.Rules, err)
	}
	data, err := readInput(o.File, stdin)
	if err != nil {
		return err
	}
	objs, err := decodeObjects(data)
	if err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	}
	items := make([]assessed, 0, len(objs))
	for _, obj := range objs {
		s, msg := assessor.Assess(obj)
		items = append(items, assessed{Object: objectName(obj), Status: s, Message: msg})
	}
	if o.Output == outputJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Items []assessed `json:"items"`
		}{items})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tSTATUS\tMESSAGE")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Object, it.Status, strings.ReplaceAll(it.Message, "\n", " "))
	}
	return tw.Flush()
}

func readInput(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(file)
}

// ruleDoc is one custom rule as written in a rules file or an Application.
type ruleDoc struct {
	Group string `json:"group,omitempty"`
	Kind  string `json:"kind"`
	CEL   string `json:"cel"`
}

func readRules(file string) ([]health.Rule, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var docs []ruleDoc
	if err := yaml.UnmarshalStrict(data, &docs); err != nil {
		return nil, fmt.Errorf("--rules %s: %w", file, err)
	}
	rules := make([]health.Rule, 0, len(docs))
	for _, d := range docs {
		rules = append(rules, health.Rule{Group: d.Group, Kind: d.Kind, Expression: d.CEL})
	}
	return rules, nil
}

// decodeObjects reads the objects of a multi-document YAML (or JSON) stream; a List's items
// are read as objects of their own.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(m) == 0 {
			continue // empty document
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetKind() == "" {
			return nil, fmt.Errorf("document %d: no kind", n)
		}
		if !obj.IsList() {
			out = append(out, obj)
			continue
		}
		err = obj.EachListItem(func(item runtime.Object) error {
			u, ok := item.(*unstructured.Unstructured)
			if !ok || u.GetKind() == "" {
				return errors.New("an item without a kind")
			}
			out = append(out, u)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
	}
}

// objectName names an object as the agent's status does: "Deployment.apps/api/web",
// "Namespace/api".
func objectName(obj *unstructured.Unstructured) string {
	gvk := obj.GroupVersionKind()
	kind := gvk.Kind
	if gvk.Group != "" {
		kind += "." + gvk.Group
	}
	if ns := obj.GetNamespace(); ns != "" {
		return kind + "/" + ns + "/" + obj.GetName()
	}
	return kind + "/" + obj.GetName()
}
