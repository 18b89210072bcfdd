// Command authctl is the operators' and developers' command line.
package main

import (
	"os"

	"github.com/ameli-auth/authsvc/internal/bench"
	"github.com/ameli-auth/authsvc/internal/cli"
)

func main() {
	if bench.IsReplica() {
		// authctl bench runs the projector's replay as a process of its
		// own, this executable again, to measure its memory alone.
		os.Exit(bench.ReplicaMain())
	}
	os.Exit(cli.Execute())
}
