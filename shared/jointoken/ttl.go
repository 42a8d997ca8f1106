package jointoken

import (
	"fmt"
	"time"
)

// Bounds of a join token's lifetime. A token is single-use and meant to be spent within
// minutes; a week covers a cluster set up by hand after a weekend.
const (
	MinTTL = time.Second
	MaxTTL = 7 * 24 * time.Hour
)

// CheckTTL refuses a lifetime outside [MinTTL, MaxTTL], naming the flag it came from.
func CheckTTL(flag string, ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return fmt.Errorf("%s %s: a join token's lifetime must be between %s and %s", flag, ttl, MinTTL, MaxTTL)
	}
	return nil
}
