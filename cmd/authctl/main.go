// Command authctl is the operators' and developers' command line.
package main

import (
	"os"

	"github.com/ameli-auth/authsvc/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
