package store

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

const testSecret = "abcdefghijklmnopqrstuvwxyz234567"

func TestRedeemToken(t *testing.T) {
	expires := t0.Add(time.Hour)
	tests := []struct {
		name    string
		stored  *JoinToken // nil: no token
		id      string
		secret  string
		now     time.Time
		want    string
		wantErr error
	}{
		{name: "valid", id: "aaaaaaaaaaaa", secret: testSecret, now: t0, want: "prod-1"},
		{name: "just before expiry", id: "aaaaaaaaaaaa", secret: testSecret, now: expires.Add(-time.Nanosecond), want: "prod-1"},
		{name: "at expiry", id: "aaaaaaaaaaaa", secret: testSecret, now: expires, wantErr: ErrTokenExpired},
		{name: "after expiry", id: "aaaaaaaaaaaa", secret: testSecret, now: expires.Add(time.Hour), wantErr: ErrTokenExpired},
		{name: "wrong secret", id: "aaaaaaaaaaaa", secret: strings.Repeat("a", 32), now: t0, wantErr: ErrTokenInvalid},
		{name: "empty secret", id: "aaaaaaaaaaaa", secret: "", now: t0, wantErr: ErrTokenInvalid},
		{name: "unknown id", id: "bbbbbbbbbbbb", secret: testSecret, now: t0, wantErr: ErrTokenInvalid},
		{name: "empty id", id: "", secret: testSecret, now: t0, wantErr: ErrTokenInvalid},
		{name: "expired and wrong secret", id: "aaaaaaaaaaaa", secret: "x", now: expires, wantErr: ErrTokenInvalid},
		{
			name:   "used",
			stored: &JoinToken{ID: "aaaaaaaaaaaa", SecretHash: jointoken.HashSecret(testSecret), Cluster: "prod-1", ExpiresAt: expires, UsedAt: t0},
			id:     "aaaaaaaaaaaa", secret: testSecret, now: t0, wantErr: ErrTokenUsed,
		},
		{
			name:   "used and wrong secret",
			stored: &JoinToken{ID: "aaaaaaaaaaaa", SecretHash: jointoken.HashSecret(testSecret), Cluster: "prod-1", ExpiresAt: expires, UsedAt: t0},
			id:     "aaaaaaaaaaaa", secret: "x", now: t0, wantErr: ErrTokenInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newTestDB(t)
			stored := JoinToken{ID: "aaaaaaaaaaaa", SecretHash: jointoken.HashSecret(testSecret), Cluster: "prod-1", ExpiresAt: expires}
			if tt.stored != nil {
				stored = *tt.stored
			}
			if err := db.PutToken(stored); err != nil {
				t.Fatal(err)
			}
			got, _, err := db.RedeemToken(tt.id, tt.secret, nil, tt.now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("RedeemToken = %q, %v; want %v", got, err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("cluster %q returned with an error", got)
				}
				if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RedeemToken = %q, %v; want %q", got, err, tt.want)
			}
			// Redeemed for good, also after a restart.
			db.reopen()
			if _, _, err := db.RedeemToken(tt.id, tt.secret, nil, tt.now); !errors.Is(err, ErrTokenUsed) {
				t.Errorf("second redeem: %v, want ErrTokenUsed", err)
			}
		})
	}
}

// TestRedeemTokenAgainFromTheSameKey: the key that spent a token may redeem it again within
// ReenrolWindow (even past the token's expiry); another key, no key, or the same key later
// finds it used.
func TestRedeemTokenAgainFromTheSameKey(t *testing.T) {
	key, other := []byte("key-1"), []byte("key-2")
	expires := t0.Add(time.Minute)
	tests := []struct {
		name    string
		key     []byte
		now     time.Time
		wantErr error
	}{
		{name: "same key at once", key: key, now: t0},
		{name: "same key within the window, past expiry", key: key, now: t0.Add(ReenrolWindow - time.Second)},
		{name: "same key at the end of the window", key: key, now: t0.Add(ReenrolWindow), wantErr: ErrTokenUsed},
		{name: "another key", key: other, now: t0.Add(time.Second), wantErr: ErrTokenUsed},
		{name: "no key", key: nil, now: t0.Add(time.Second), wantErr: ErrTokenUsed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newTestDB(t)
			if err := db.PutToken(JoinToken{ID: "aaaaaaaaaaaa", SecretHash: jointoken.HashSecret(testSecret), Cluster: "prod-1", ExpiresAt: expires}); err != nil {
				t.Fatal(err)
			}
			if c, again, err := db.RedeemToken("aaaaaaaaaaaa", testSecret, key, t0); err != nil || c != "prod-1" || again {
				t.Fatalf("first redeem = %q, %v, %v", c, again, err)
			}
			db.reopen()
			c, again, err := db.RedeemToken("aaaaaaaaaaaa", testSecret, tt.key, tt.now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || c != "" {
					t.Fatalf("RedeemToken = %q, %v; want %v", c, err, tt.wantErr)
				}
				return
			}
			if err != nil || c != "prod-1" || !again {
				t.Fatalf("RedeemToken = %q, %v, %v; want prod-1 again", c, again, err)
			}
			if _, _, err := db.RedeemToken("aaaaaaaaaaaa", "wrong", key, tt.now); !errors.Is(err, ErrTokenInvalid) {
				t.Errorf("same key with a wrong secret: %v, want ErrTokenInvalid", err)
			}
		})
	}
}

// TestRedeemTokenOnce redeems one token from many goroutines: exactly one may win.
func TestRedeemTokenOnce(t *testing.T) {
	db := newTestDB(t)
	if err := db.PutToken(JoinToken{ID: "aaaaaaaaaaaa", SecretHash: jointoken.HashSecret(testSecret), Cluster: "c", ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = db.RedeemToken("aaaaaaaaaaaa", testSecret, []byte{byte(i)}, t0)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrTokenUsed):
			t.Errorf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d redeems succeeded, want exactly 1", won)
	}
}

func TestPutTokenRejects(t *testing.T) {
	db := newTestDB(t)
	good := JoinToken{ID: "aaaaaaaaaaaa", SecretHash: jointoken.HashSecret(testSecret), Cluster: "c", ExpiresAt: t0}
	tests := []struct {
		name   string
		mutate func(*JoinToken)
	}{
		{name: "no id", mutate: func(j *JoinToken) { j.ID = "" }},
		{name: "no cluster", mutate: func(j *JoinToken) { j.Cluster = "" }},
		{name: "short hash", mutate: func(j *JoinToken) { j.SecretHash = j.SecretHash[:16] }},
		{name: "no expiry", mutate: func(j *JoinToken) { j.ExpiresAt = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := good
			tt.mutate(&tok)
			if err := db.PutToken(tok); err == nil {
				t.Fatal("want error")
			}
		})
	}
}
