package httpserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSlowClientsAreCutOff: a client that dribbles its headers (slow-loris), or its body, or
// sits idle after a request, has its connection closed by the server once the bound passes,
// while a prompt client is served.
func TestSlowClientsAreCutOff(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok\n"))
	})
	srv := New(h, Timeouts{Header: 300 * time.Millisecond, Read: 600 * time.Millisecond, Idle: 300 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := l.Addr().String()

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("prompt client: %s", resp.Status)
	}

	tests := []struct {
		name   string
		prefix string // sent at once
		drip   string // then one byte every 50ms, for ever (until closed)
	}{
		{"slow headers", "GET / HTTP/1.1\r\nHost: x\r\n", "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"slow body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", string(make([]byte, 100000))},
		{"idle after a request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(tt.prefix)); err != nil {
				t.Fatal(err)
			}
			closed := make(chan struct{})
			go func() {
				defer close(closed)
				_, _ = io.Copy(io.Discard, bufio.NewReader(conn)) // ends when the server closes
			}()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(10 * time.Second)
			for i := 0; ; i++ {
				select {
				case <-closed:
					return
				case <-deadline:
					t.Fatal("the server kept the connection of a slow client open for 10s")
				case <-tick.C:
					if i < len(tt.drip) {
						if _, err := conn.Write([]byte{tt.drip[i]}); err != nil && !errors.Is(err, net.ErrClosed) {
							return // closed by the server: a write fails with a reset
						}
					}
				}
			}
		})
	}
}
