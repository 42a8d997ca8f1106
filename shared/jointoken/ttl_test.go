package jointoken

import (
	"strings"
	"testing"
	"time"
)

func TestCheckTTL(t *testing.T) {
	for _, tt := range []struct {
		ttl time.Duration
		ok  bool
	}{
		{-time.Hour, false}, {0, false}, {500 * time.Millisecond, false}, {time.Second, true},
		{time.Hour, true}, {MaxTTL, true}, {MaxTTL + time.Second, false}, {10 * 365 * 24 * time.Hour, false},
	} {
		err := CheckTTL("--ttl", tt.ttl)
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "--ttl "+tt.ttl.String())) {
			t.Errorf("CheckTTL(%s) = %v, want ok=%v and an error naming --ttl and the value", tt.ttl, err, tt.ok)
		}
	}
}
