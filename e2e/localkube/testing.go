package localkube

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartT starts clusters for one test and stops them when it ends; when the test failed, the
// tail of every process log is written to the test log first.
func StartT(t testing.TB, opts ...Options) []*Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clusters, err := StartAll(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clusters {
		t.Logf("localkube: cluster %s ready in %s (kubeconfig %s)", c.Name, c.StartupTime.Round(time.Millisecond), c.Kubeconfig)
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(c.Logs())
			}
			c.Stop()
		})
	}
	return clusters
}

// Shared starts clusters once for all tests of a package, the first time a test asks for
// them, and stops them after the last test (call Main from TestMain).
type Shared struct {
	opts     []Options
	once     sync.Once
	clusters []*Cluster
	err      error
	mu       sync.Mutex
}

// NewShared declares the clusters a package's tests share.
func NewShared(opts ...Options) *Shared { return &Shared{opts: opts} }

// Clusters returns the shared clusters, starting them on first use; it fails t if they cannot start.
func (s *Shared) Clusters(t testing.TB) []*Cluster {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		clusters, err := StartAll(ctx, s.opts...)
		s.mu.Lock()
		s.clusters, s.err = clusters, err
		s.mu.Unlock()
		for _, c := range clusters {
			fmt.Fprintf(os.Stderr, "localkube: shared cluster %s ready in %s (kubeconfig %s)\n",
				c.Name, c.StartupTime.Round(time.Millisecond), c.Kubeconfig)
		}
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.clusters
}

// Main runs the package's tests, prints the clusters' logs when any failed, stops the clusters
// (also on SIGINT/SIGTERM) and returns the exit code for os.Exit.
func (s *Shared) Main(m *testing.M) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			s.stop()
			os.Exit(130)
		case <-done:
		}
	}()
	code := m.Run()
	close(done)
	signal.Stop(sig)
	if code != 0 {
		s.mu.Lock()
		for _, c := range s.clusters {
			fmt.Fprintln(os.Stderr, c.Logs())
		}
		s.mu.Unlock()
	}
	s.stop()
	return code
}

func (s *Shared) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clusters {
		c.Stop()
	}
	s.clusters = nil
}
