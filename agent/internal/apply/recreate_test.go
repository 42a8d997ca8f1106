package apply

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// annotationsYAML is the metadata.annotations block of kv (key, value, ...), or "".
func annotationsYAML(kv []string) string {
	if len(kv) == 0 {
		return ""
	}
	s := "  annotations:\n"
	for i := 0; i+1 < len(kv); i += 2 {
		s += fmt.Sprintf("    %s: %q\n", kv[i], kv[i+1])
	}
	return s
}

// selectorDeployment is a Deployment selecting its pods by app=selector, with annotations.
func selectorDeployment(name, selector string, annotations ...string) string {
	ann := annotationsYAML(annotations)
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
%[3]sspec:
  replicas: 1
  selector:
    matchLabels:
      app: %[2]s
  template:
    metadata:
      labels:
        app: %[2]s
    spec:
      containers:
      - name: main
        image: registry.example/%[1]s:v1
`, name, selector, ann)
}

// job is a Job running image, with annotations.
func job(name, image string, annotations ...string) string {
	ann := annotationsYAML(annotations)
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %[1]s
%[3]sspec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: %[2]s
`, name, image, ann)
}

// TestImmutableFieldChange: a revision changing an immutable field fails naming the object,
// the field and the option that recreates it, and changes nothing; with Force=true (Argo CD's
// annotation or Flotilla's) the object is deleted and created anew.
func TestImmutableFieldChange(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-immutable")
	e.CreateNamespace(t, ns)
	a := newApplier(t, e)
	ctx := kubetest.Ctx(t)
	policy := Policy{}
	apply := func(docs ...string) (*ChangeSet, error) {
		return a.Apply(ctx, revision(t, "immutable", ns, policy, docs...), nil)
	}
	if _, err := apply(selectorDeployment("web", "web"), job("migrate", "registry.example/migrate:v1")); err != nil {
		t.Fatal(err)
	}
	uid := func(kind, name string) string { // UID and what the change is about
		t.Helper()
		if kind == "Deployment" {
			d, err := e.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return string(d.UID) + "/" + d.Spec.Selector.MatchLabels["app"]
		}
		j, err := e.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return string(j.UID) + "/" + j.Spec.Template.Spec.Containers[0].Image
	}
	depBefore, jobBefore := uid("Deployment", "web"), uid("Job", "migrate")

	for _, c := range []struct {
		doc, object, field string
	}{
		{selectorDeployment("web", "web-v2"), "Deployment.apps/" + ns + "/web", "spec.selector"},
		{job("migrate", "registry.example/migrate:v2"), "Job.batch/" + ns + "/migrate", "spec.template"},
	} {
		_, err := apply(c.doc)
		var oe *ObjectError
		if !errors.As(err, &oe) || !IsRejected(err) || oe.Object.String() != c.object {
			t.Fatalf("changing %s of %s: err = %v, want a rejected ObjectError for the object", c.field, c.object, err)
		}
		for _, w := range []string{c.object, c.field, "Force=true", AnnotationArgoSyncOptions} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %q", err, w)
			}
		}
	}
	if got := uid("Deployment", "web"); got != depBefore {
		t.Errorf("Deployment changed by a refused revision: %s, was %s", got, depBefore)
	}
	if got := uid("Job", "migrate"); got != jobBefore {
		t.Errorf("Job changed by a refused revision: %s, was %s", got, jobBefore)
	}

	res, err := apply(
		selectorDeployment("web", "web-v2", AnnotationArgoSyncOptions, "Replace=true, Force=true"),
		job("migrate", "registry.example/migrate:v2", AnnotationSyncOptions, "Force=true"))
	if err != nil {
		t.Fatalf("with Force=true: %v", err)
	}
	if res.Count(Applied) != 2 {
		t.Errorf("applied %v, want both objects", kubetest.Names(res.Objects(Applied)))
	}
	depAfter, jobAfter := uid("Deployment", "web"), uid("Job", "migrate")
	if depAfter == depBefore || !strings.HasSuffix(depAfter, "/web-v2") {
		t.Errorf("Deployment after Force=true: %s (was %s), want a new object selecting app=web-v2", depAfter, depBefore)
	}
	if jobAfter == jobBefore || !strings.HasSuffix(jobAfter, "/registry.example/migrate:v2") {
		t.Errorf("Job after Force=true: %s (was %s), want a new object running v2", jobAfter, jobBefore)
	}
	// Applied again, nothing changes: no recreation loop.
	res, err = apply(
		selectorDeployment("web", "web-v2", AnnotationArgoSyncOptions, "Replace=true, Force=true"),
		job("migrate", "registry.example/migrate:v2", AnnotationSyncOptions, "Force=true"))
	if err != nil || res.Count(Applied) != 0 {
		t.Errorf("same revision again: applied %v, err %v; want nothing written", res, err)
	}
	if _, err := e.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("Deployment gone")
	}

	// Force=true for the whole app (spec.syncPolicy.syncOptions), no annotation.
	before := uid("Deployment", "web")
	if _, err := apply(selectorDeployment("web", "web-v3")); err == nil {
		t.Fatal("changing the selector without Force=true: no error")
	}
	policy.Force = true
	if _, err := apply(selectorDeployment("web", "web-v3")); err != nil {
		t.Fatalf("with the app's Force=true: %v", err)
	}
	if after := uid("Deployment", "web"); after == before || !strings.HasSuffix(after, "/web-v3") {
		t.Errorf("Deployment after the app's Force=true: %s (was %s), want a new object selecting app=web-v3", after, before)
	}
}

// TestImmutableFields reads the fields an Invalid API error says may not change.
func TestImmutableFields(t *testing.T) {
	gk := schema.GroupKind{Group: "apps", Kind: "Deployment"}
	for _, c := range []struct {
		name string
		err  error
		want []string
	}{
		{"selector", apierrors.NewInvalid(gk, "web", field.ErrorList{
			field.Invalid(field.NewPath("spec", "selector"), "x", "field is immutable"),
			field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0"),
		}), []string{"spec.selector"}},
		{"clusterIP", apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "api", field.ErrorList{
			field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), "10.0.0.9", "may not change once set"),
		}), []string{"spec.clusterIPs[0]"}},
		{"other invalid", apierrors.NewInvalid(gk, "web", field.ErrorList{
			field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0"),
		}), nil},
		{"not invalid", apierrors.NewForbidden(schema.GroupResource{Resource: "deployments"}, "web", errors.New("field is immutable")), nil},
	} {
		if got := immutableFields(c.err); !slices.Equal(got, c.want) {
			t.Errorf("%s: immutableFields = %v, want %v", c.name, got, c.want)
		}
	}
}
