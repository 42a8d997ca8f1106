// Command fleetsim runs many simulated Flotilla agents in one process against a real hub, over
// real TCP, TLS and gRPC, and reports how fast desired state reached them. See --help.
package main

import (
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
