package promote

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func healthy(rev string, since time.Duration) *fleet.Report {
	return &fleet.Report{App: "api", Sync: "Synced", Health: "Healthy", AppliedRevision: rev, HealthyRevision: rev, HealthySince: now.Add(-since)}
}

func TestVouch(t *testing.T) {
	const r1, r2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	degraded := healthy(r1, time.Hour)
	degraded.Health, degraded.HealthySince = "Degraded", time.Time{}
	rolled := healthy(r1, time.Hour)
	rolled.RolledBackRevision = r2
	drifted := healthy(r1, time.Hour)
	drifted.Sync = "OutOfSync"
	tests := []struct {
		name      string
		witnesses []Witness
		soak      time.Duration
		want      string // the refusal, "" for none
	}{
		{"all healthy and soaked", []Witness{{"s1", true, healthy(r1, time.Hour)}, {"s2", true, healthy(r1, 20*time.Minute)}}, 10 * time.Minute, ""},
		{"no soak", []Witness{{"s1", true, healthy(r1, 0)}}, 0, ""},
		{"no clusters", nil, 0, "no registered cluster with env=staging runs the app"},
		{"one degraded", []Witness{{"s1", true, healthy(r1, time.Hour)}, {"s2", true, degraded}}, 0,
			"env=staging is not healthy on all its clusters: s2 is Degraded at 1111111"},
		{"one stale", []Witness{{"s1", false, healthy(r1, time.Hour)}}, 0, "s1 is Stale or disconnected"},
		{"nothing applied", []Witness{{"s1", true, nil}}, 0, "s1 has applied nothing"},
		{"rolled back", []Witness{{"s1", true, rolled}}, 0, "s1 rolled back from 2222222"},
		{"out of sync", []Witness{{"s1", true, drifted}}, 0, "s1 is OutOfSync at 1111111"},
		{"different revisions", []Witness{{"s1", true, healthy(r1, time.Hour)}, {"s2", true, healthy(r2, time.Hour)}}, 0,
			"the clusters of env=staging run different revisions: 1111111 on s1; 2222222 on s2"},
		{"not soaked", []Witness{{"s1", true, healthy(r1, time.Hour)}, {"s2", true, healthy(r1, 5*time.Minute)}}, time.Hour,
			"revision 1111111 is not soaked: s2 Healthy for 5m0s; the soak time is 1h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Vouch("staging", tc.witnesses, tc.soak, now)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if src.Revision != r1 || len(src.Clusters) != len(tc.witnesses) {
					t.Errorf("source %+v", src)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a refusal with %q", err, tc.want)
			}
		})
	}
	src, _ := Vouch("staging", []Witness{{"s2", true, healthy(r1, time.Hour)}, {"s1", true, healthy(r1, 20*time.Minute)}}, 0, now)
	if !src.HealthySince.Equal(now.Add(-20*time.Minute)) || strings.Join(src.Clusters, ",") != "s1,s2" {
		t.Errorf("source %+v: want the latest HealthySince and sorted clusters", src)
	}
}

const stagingOverlay = `resources:
- ../../../base/api
images:
- name: registry.example/api
  newTag: "2.0.0"
- name: registry.example/sidecar
  newName: mirror.example/sidecar
  digest: sha256:abc
`

func TestCopyImages(t *testing.T) {
	tests := []struct {
		name, dst, want string
		changes         []ImageChange
	}{
		{"target without images", `# production
resources:
- ../../../base/api # the base
patches:
- target: {kind: Deployment, name: api}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 5
`, `# production
resources:
- ../../../base/api # the base
patches:
- target: {kind: Deployment, name: api}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 5
images:
- name: registry.example/api
  newTag: "2.0.0"
- name: registry.example/sidecar
  newName: mirror.example/sidecar
  digest: sha256:abc
`, []ImageChange{{"registry.example/api", "", "registry.example/api:2.0.0"}, {"registry.example/sidecar", "", "mirror.example/sidecar@sha256:abc"}}},
		{"target with older tags and other images", `resources: [../../../base/api]
images:
- name: registry.example/other
  newTag: keep
- name: registry.example/api
  newTag: "1.0.0"
  digest: sha256:old
- name: registry.example/sidecar
  newName: mirror.example/sidecar
  digest: sha256:abc
`, `resources: [../../../base/api]
images:
- name: registry.example/other
  newTag: keep
- name: registry.example/api
  newTag: "2.0.0"
`, []ImageChange{{"registry.example/api", "registry.example/api:1.0.0@sha256:old", "registry.example/api:2.0.0"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, changes, err := CopyImages([]byte(stagingOverlay), []byte(tc.dst))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(out), strings.SplitAfter(tc.want, "images:\n")[0]) {
				t.Errorf("kustomization:\n%s\nwant:\n%s", out, tc.want)
			}
			if tc.name == "target without images" && string(out) != tc.want {
				t.Errorf("kustomization:\n%s\nwant:\n%s", out, tc.want)
			}
			if len(changes) != len(tc.changes) {
				t.Fatalf("changes %+v, want %+v", changes, tc.changes)
			}
			for i := range changes {
				if changes[i] != tc.changes[i] {
					t.Errorf("change %d = %+v, want %+v", i, changes[i], tc.changes[i])
				}
			}
			// Applying it again finds nothing to do.
			if _, _, err := CopyImages([]byte(stagingOverlay), out); !errors.Is(err, ErrNothingToPromote) {
				t.Errorf("second promotion: %v, want ErrNothingToPromote", err)
			}
		})
	}
	if _, _, err := CopyImages([]byte("resources: [a]\n"), []byte("resources: [b]\n")); !errors.Is(err, ErrNothingToPromote) {
		t.Errorf("source without images: %v", err)
	}
	if _, _, err := CopyImages([]byte("images: {a: b}\n"), []byte("resources: [b]\n")); err == nil {
		t.Error("images that are no list accepted")
	}
}

func TestFindKustomization(t *testing.T) {
	fsys := fstest.MapFS{
		"a/kustomization.yml": {Data: []byte("x")},
		"b/Kustomization":     {Data: []byte("y")},
		"c/deploy.yaml":       {Data: []byte("z")},
	}
	for dir, want := range map[string]string{"a": "a/kustomization.yml", "b": "b/Kustomization"} {
		if p, _, err := FindKustomization(fsys, dir); err != nil || p != want {
			t.Errorf("%s: %q, %v; want %q", dir, p, err, want)
		}
	}
	if _, _, err := FindKustomization(fsys, "c"); err == nil || !strings.Contains(err.Error(), "only kustomize overlays") {
		t.Errorf("plain directory: %v", err)
	}
}

func TestCommitMessage(t *testing.T) {
	p := &Plan{
		App: "api", From: "staging", To: "production", Soak: 10 * time.Minute, By: "admin",
		Source:     Source{Revision: "0123456789abcdef0123456789abcdef01234567", Clusters: []string{"staging-1", "staging-2"}, HealthySince: now},
		SourcePath: "environments/staging/api", TargetPath: "environments/production/api/kustomization.yaml",
		Changes: []ImageChange{{"registry.example/api", "", "registry.example/api:2.0.0"}},
	}
	msg := p.CommitMessage()
	for _, want := range []string{
		"Promote api from staging to production at 0123456\n\n",
		"Revision 0123456789abcdef0123456789abcdef01234567 has been Healthy on every cluster of env=staging since 2026-03-01T12:00:00Z",
		"image registry.example/api: (no override) -> registry.example/api:2.0.0",
		"Source-Revision: 0123456789abcdef0123456789abcdef01234567\n",
		"Vouched-By: staging-1, staging-2\n",
		"Promoted-By: admin\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if got := BranchName("api", p.Source.Revision); got != "flotilla/promote-api-0123456" {
		t.Errorf("branch %q", got)
	}
}
