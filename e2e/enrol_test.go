package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

const identitySecret = "flotilla-agent-identity"

// TestAgentWithATakenPortFailsBeforeJoining: a second agent on one machine, whose
// --http-listen is taken, exits naming the flag before it enrols — it has no identity in its
// cluster — and its join token then enrols an agent with a free port.
func TestAgentWithATakenPortFailsBeforeJoining(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{skipAgents: true})
	staging := e.clusters[0]
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "flotilla-agent"), "--hub", e.fleet.HubAddr,
		"--join-token", e.fleet.Token("staging"), "--kubeconfig", staging.Kubeconfig,
		"--http-listen", taken.Addr().String()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--http-listen "+taken.Addr().String()) {
		t.Fatalf("agent with a taken port: %v\n%s\nwant a failure naming --http-listen", err, out)
	}
	client, err := staging.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Secrets("flotilla-system").Get(e.ctx, identitySecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the failed agent enrolled (identity Secret: %v)", err)
	}
	// The token is still good.
	if err := e.fleet.StartAgent(staging); err != nil {
		t.Fatal(err)
	}
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, func(items []localfleet.StatusItem) bool {
		var staged []localfleet.StatusItem
		for _, it := range items {
			if it.Cluster == "staging" {
				staged = append(staged, it)
			}
		}
		return allAt(rev1, 2)(staged)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAgentRenewsACertificateThatExpiredWhileTheHubWasAway: with 20-second certificates, the
// hub stops until an agent's certificate has expired; when it is back the agent renews with
// the expired certificate (within --agent-cert-renewal-grace) and reconnects, without a new
// join token.
func TestAgentRenewsACertificateThatExpiredWhileTheHubWasAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{hubArgs: []string{"--agent-cert-ttl", "20s", "--agent-cert-renewal-grace", "10m"}})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	client, err := e.clusters[0].Client()
	if err != nil {
		t.Fatal(err)
	}
	e.fleet.Hub.Stop(10 * time.Second)
	var expired *x509.Certificate
	err = wait.PollUntilContextTimeout(e.ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		expired = agentCert(ctx, client)
		return expired != nil && time.Now().After(expired.NotAfter), nil
	})
	if err != nil {
		t.Fatalf("the staging agent's certificate did not expire while the hub was away: %v", err)
	}
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	waitSeenSince(t, e, time.Now(), 2*time.Minute, rev1)
	renewed := agentCert(e.ctx, client)
	if renewed == nil || renewed.SerialNumber.Cmp(expired.SerialNumber) == 0 {
		t.Fatal("the agent reconnected without a renewed certificate in its identity Secret")
	}
	if log := e.fleet.Hub.Tail(1 << 20); !strings.Contains(log, "agent certificate renewed after it expired") {
		t.Errorf("the hub log has no renewal of an expired certificate:\n%s", log)
	}
}

// agentCert is the certificate in the agent's identity Secret, nil while there is none.
func agentCert(ctx context.Context, client kubernetes.Interface) *x509.Certificate {
	sec, err := client.CoreV1().Secrets("flotilla-system").Get(ctx, identitySecret, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	block, _ := pem.Decode(sec.Data["tls.crt"])
	if block == nil {
		return nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return cert
}
