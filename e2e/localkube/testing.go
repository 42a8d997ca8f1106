package localkube

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
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
	return runMain(m, func() []*Cluster {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.clusters
	}, s.stop)
}

func (s *Shared) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clusters {
		c.Stop()
	}
	s.clusters = nil
}

// Pool hands each test an exclusive set of clusters, so that tests which each need clean
// clusters of their own can run in parallel (t.Parallel). A set is started the first time a test
// finds none free, up to the pool's size; a test waits for a free set beyond that. When its test
// has ended (after the test's own clean-ups) a set is reset in the background, every namespace
// made since it started deleted, and goes back to the pool; a set that cannot be reset is stopped
// and replaced. Cluster-scoped objects a test makes are the test's to delete. Call Main from
// TestMain.
type Pool struct {
	opts []Options

	mu        sync.Mutex
	freed     *sync.Cond
	size      int
	sets      [][]*Cluster // every set started and not stopped
	starting  int
	free      [][]*Cluster
	held      map[testing.TB][]*Cluster
	baselines map[*Cluster][]string // the namespaces a cluster had when it started
	resets    sync.WaitGroup
}

// NewPool declares the clusters of one set. The pool's size is the environment variable
// FLOTILLA_E2E_CLUSTER_SETS when set, else one more than go test's -parallel (so that no test
// waits for a set being reset).
func NewPool(opts ...Options) *Pool {
	p := &Pool{opts: opts, held: map[testing.TB][]*Cluster{}, baselines: map[*Cluster][]string{}}
	p.freed = sync.NewCond(&p.mu)
	return p
}

// Clusters returns the test's set, taking one from the pool on the test's first call; it fails
// tb if none can start.
func (p *Pool) Clusters(tb testing.TB) []*Cluster {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if cs, ok := p.held[tb]; ok {
		return cs
	}
	if p.size == 0 {
		p.size = poolSize()
	}
	var cs []*Cluster
	for cs == nil {
		switch {
		case len(p.free) > 0:
			cs, p.free = p.free[len(p.free)-1], p.free[:len(p.free)-1]
		case len(p.sets)+p.starting < p.size:
			p.starting++
			p.mu.Unlock()
			started, baselines, err := p.start()
			p.mu.Lock()
			p.starting--
			if err != nil {
				p.freed.Broadcast() // a waiting test may start one instead
				tb.Fatal(err)
			}
			p.sets = append(p.sets, started)
			for i, c := range started {
				p.baselines[c] = baselines[i]
			}
			cs = started
		default:
			p.freed.Wait()
		}
	}
	p.held[tb] = cs
	tb.Cleanup(func() {
		p.mu.Lock()
		delete(p.held, tb)
		p.resets.Add(1)
		p.mu.Unlock()
		go p.reset(cs)
	})
	return cs
}

// reset deletes the namespaces made since the set started and returns it to the pool, or stops
// it when that fails.
func (p *Pool) reset(cs []*Cluster) {
	defer p.resets.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	for _, c := range cs {
		p.mu.Lock()
		keep := p.baselines[c]
		p.mu.Unlock()
		if err = c.deleteNamespacesExcept(ctx, keep); err != nil {
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.freed.Broadcast()
	if err == nil {
		p.free = append(p.free, cs)
		return
	}
	fmt.Fprintf(os.Stderr, "localkube: a pooled cluster set could not be reset, replacing it: %v\n", err)
	p.sets = slices.DeleteFunc(p.sets, func(set []*Cluster) bool { return len(set) > 0 && set[0] == cs[0] })
	for _, c := range cs {
		delete(p.baselines, c)
		c.Stop()
	}
}

func (p *Pool) start() ([]*Cluster, [][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clusters, err := StartAll(ctx, p.opts...)
	if err != nil {
		return nil, nil, err
	}
	baselines := make([][]string, len(clusters))
	for i, c := range clusters {
		if baselines[i], err = c.namespaces(ctx); err != nil {
			for _, c := range clusters {
				c.Stop()
			}
			return nil, nil, err
		}
		fmt.Fprintf(os.Stderr, "localkube: pooled cluster %s ready in %s (kubeconfig %s)\n",
			c.Name, c.StartupTime.Round(time.Millisecond), c.Kubeconfig)
	}
	return clusters, baselines, nil
}

// poolSize is FLOTILLA_E2E_CLUSTER_SETS, else go test's -parallel plus one, else 2.
func poolSize() int {
	if n, err := strconv.Atoi(os.Getenv("FLOTILLA_E2E_CLUSTER_SETS")); err == nil && n > 0 {
		return n
	}
	if f := flag.Lookup("test.parallel"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 0 {
			return n + 1
		}
	}
	return 2
}

// Main runs the package's tests, prints the clusters' logs when any failed, stops the clusters
// (also on SIGINT/SIGTERM) and returns the exit code for os.Exit.
func (p *Pool) Main(m *testing.M) int {
	return runMain(m, func() []*Cluster {
		p.mu.Lock()
		defer p.mu.Unlock()
		var all []*Cluster
		for _, set := range p.sets {
			all = append(all, set...)
		}
		return all
	}, p.stop)
}

func (p *Pool) stop() {
	p.resets.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, set := range p.sets {
		for _, c := range set {
			c.Stop()
		}
	}
	p.sets, p.free = nil, nil
}

// runMain runs m, stopping the clusters when it ends or on SIGINT/SIGTERM, and prints the
// clusters' logs first when a test failed.
func runMain(m *testing.M, clusters func() []*Cluster, stop func()) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			stop()
			os.Exit(130)
		case <-done:
		}
	}()
	code := m.Run()
	close(done)
	signal.Stop(sig)
	if code != 0 {
		for _, c := range clusters() {
			fmt.Fprintln(os.Stderr, c.Logs())
		}
	}
	stop()
	return code
}
