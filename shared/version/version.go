// Package version holds the build's version, stamped at link time, and the protocol version
// hub and agent exchange in Hello.
package version

import "fmt"

// Version and Commit are set with -ldflags -X by the Makefile and the Dockerfiles.
var (
	Version = "dev"
	Commit  = "unknown"
)

// Protocol is the version of the hub⇄agent protocol. A hub accepts agents whose protocol is
// between MinProtocol and Protocol.
const (
	Protocol    uint32 = 1
	MinProtocol uint32 = 1
)

// String is the human form, "VERSION (commit COMMIT)".
func String() string { return fmt.Sprintf("%s (commit %s)", Version, Commit) }
