package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

// TestEncryptedSecret: an EncryptedSecret encrypted in Git to the staging agent's age
// recipient (read from `flotilla clusters -o json`) becomes a decrypted Secret in staging,
// and its plaintext appears nowhere else: not in the hub's or the agents' logs, the hub's data
// dir (store, git cache), status, diff, history, apps, or the API servers' audit logs. Then a
// plain Secret under spec.secrets: deny fails the render, naming the object but not its value,
// and the last good state stays.
func TestEncryptedSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	recipients := ageRecipients(t, e)
	if recipients["staging"] == "" || recipients["production"] == "" {
		t.Fatalf("flotilla clusters -o json has no ageRecipient for every cluster: %v", recipients)
	}
	for name, a := range e.fleet.Agents {
		if b, err := os.ReadFile(a.LogPath); err != nil || !bytes.Contains(b, []byte(recipients[name])) {
			t.Errorf("the %s agent's log does not print its age recipient %s (read: %v)", name, recipients[name], err)
		}
	}
	rcpt, err := age.ParseX25519Recipient(recipients["staging"])
	if err != nil {
		t.Fatalf("staging ageRecipient: %v", err)
	}
	canary := fmt.Sprintf("age-canary-%d", time.Now().UnixNano())
	ciphertext := encryptArmored(t, rcpt, canary)
	enc := "apiVersion: flotilla.dev/v1alpha1\nkind: EncryptedSecret\nmetadata:\n  name: worker-creds\n  labels: {app: worker}\n" +
		"spec:\n  type: Opaque\n  encryptedData:\n    password: |\n" + indent(ciphertext, "      ")
	// Only staging's overlay holds it: it is encrypted to staging alone.
	rev2, err := e.repo.Commit("worker: encrypted credentials for staging", map[string]string{
		"environments/staging/worker/kustomization.yaml": "resources:\n- ../../../base/worker\n- creds.yaml\n",
		"environments/staging/worker/creds.yaml":         enc,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, allAt(rev2, 4)); err != nil {
		t.Fatal(err)
	}
	staging, err := e.clusters[0].Client()
	if err != nil {
		t.Fatal(err)
	}
	sec, err := staging.CoreV1().Secrets("worker").Get(e.ctx, "worker-creds", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the EncryptedSecret did not become a Secret in staging: %v", err)
	}
	if got := string(sec.Data["password"]); got != canary {
		t.Errorf("staging Secret worker-creds password is %d bytes, not the decrypted value", len(got))
	}
	if sec.Labels["app"] != "worker" {
		t.Errorf("staging Secret worker-creds labels %v lack app=worker from the EncryptedSecret", sec.Labels)
	}

	forms := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))}
	outputs := map[string][]byte{}
	for _, args := range [][]string{
		{"status", "-o", "json"}, {"diff", "worker", "--cluster", "staging"}, {"history", "worker", "-o", "json"},
		{"apps", "-o", "json"}, {"clusters", "-o", "json"},
	} {
		out, err := e.fleet.CLI(e.ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		outputs["flotilla "+strings.Join(args, " ")] = out
	}
	files := []string{e.fleet.Hub.LogPath}
	for _, a := range e.fleet.Agents {
		files = append(files, a.LogPath)
	}
	for _, c := range e.clusters {
		if c.AuditLogPath != "" {
			files = append(files, c.AuditLogPath) // metadata level: Kubernetes logs no values
		}
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		outputs[p] = b
	}
	// The hub's data dir: the bbolt store and the git cache, byte for byte.
	err = filepath.WalkDir(e.fleet.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		outputs[p] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for where, out := range outputs {
		for _, form := range forms {
			if bytes.Contains(out, []byte(form)) {
				t.Errorf("%s holds the decrypted Secret value (%s)", where, form)
			}
		}
	}

	// A plain Secret under spec.secrets: deny: the render fails naming it, nothing is applied.
	worker := localfleet.DemoApplications(e.git.URL(e.repo.Dir))["worker.yaml"]
	worker = strings.Replace(worker, "  syncPolicy:", "  secrets: deny\n  syncPolicy:", 1)
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"worker.yaml": worker}); err != nil {
		t.Fatal(err)
	}
	plainCanary := fmt.Sprintf("plain-canary-%d", time.Now().UnixNano())
	rev3, err := e.repo.Commit("worker: a plain secret", map[string]string{
		"base/worker/kustomization.yaml": "resources:\n- deployment.yaml\n- configmap.yaml\n- plain.yaml\n",
		"base/worker/plain.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: worker-plain\ndata:\n  token: " +
			base64.StdEncoding.EncodeToString([]byte(plainCanary)) + "\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	var appsOut []byte
	var workerErr string
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		out, err := e.fleet.CLI(ctx, "apps", "-o", "json")
		if err != nil {
			return false, nil
		}
		appsOut = out
		var resp struct {
			Items []struct {
				Name     string `json:"name"`
				Revision string `json:"revision"`
				Error    string `json:"error"`
			} `json:"items"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return false, err
		}
		for _, a := range resp.Items {
			if a.Name == "worker" && a.Revision == rev3 && a.Error != "" {
				workerErr = a.Error
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("worker shows no render error for the plain Secret at %s: %v\n%s", rev3, err, appsOut)
	}
	if !strings.Contains(workerErr, "Secret/worker-plain") || !strings.Contains(workerErr, "spec.secrets: deny") {
		t.Errorf("worker's render error does not name the plain Secret and the rule: %s", workerErr)
	}
	// flotilla status shows the refusal on worker's rows, with the last good state's health.
	items, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		n := 0
		for _, it := range items {
			if it.App == "worker" && it.Sync == "RenderFailed" {
				n++
			}
		}
		return n == 2
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.App != "worker" {
			continue
		}
		if it.DesiredRevision != rev2 || it.AppliedRevision != rev2 {
			t.Errorf("worker on %s moved to desired %s applied %s; the last good state %s should stay", it.Cluster, it.DesiredRevision, it.AppliedRevision, rev2)
		}
		if it.Health != "Healthy" || !strings.Contains(it.Message, "Secret/worker-plain") || !strings.Contains(it.Message, "spec.secrets: deny") {
			t.Errorf("worker on %s: health %s message %q, want Healthy and the plain Secret and the rule named", it.Cluster, it.Health, it.Message)
		}
	}
	if out, err := e.fleet.CLI(e.ctx, "status", "-o", "wide"); err != nil {
		t.Fatal(err)
	} else {
		appsOut = append(appsOut, out...)
	}
	for _, form := range []string{plainCanary, base64.StdEncoding.EncodeToString([]byte(plainCanary))} {
		if bytes.Contains(appsOut, []byte(form)) {
			t.Errorf("flotilla apps -o json or status -o wide holds the plain Secret's value (%s)", form)
		}
	}
	if _, err := staging.CoreV1().Secrets("worker").Get(e.ctx, "worker-plain", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the denied plain Secret reached staging (get: %v)", err)
	}
}

// ageRecipients reads each cluster's ageRecipient from `flotilla clusters -o json`.
func ageRecipients(t *testing.T, e *env) map[string]string {
	t.Helper()
	out, err := e.fleet.CLI(e.ctx, "clusters", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Items []struct {
			Name         string `json:"name"`
			AgeRecipient string `json:"ageRecipient"`
		} `json:"items"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("clusters -o json: %v: %s", err, out)
	}
	m := map[string]string{}
	for _, c := range resp.Items {
		m[c.Name] = c.AgeRecipient
	}
	return m
}

// encryptArmored encrypts plaintext to r as ASCII-armored age.
func encryptArmored(t *testing.T, r age.Recipient, plaintext string) string {
	t.Helper()
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(plaintext)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}
