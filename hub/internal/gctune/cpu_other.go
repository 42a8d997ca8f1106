//go:build !unix

package gctune

import "time"

// ProcessCPU is not available on this platform: the Tuner leaves garbage collection alone.
func ProcessCPU() (time.Duration, bool) { return 0, false }
