// Package cli is authctl: the operators' and developers' command line.
package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Execute runs authctl with the process arguments.
func Execute() int {
	if err := NewRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "authctl:", err)
		return 1
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "authctl",
		Short:         "Operate and explore the ameli-style authentication service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("nats-url", envOr("AUTH_NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL (AUTH_NATS_URL)")
	root.PersistentFlags().String("subject-prefix", envOr("AUTH_SUBJECT_PREFIX", "auth"), "subject prefix (AUTH_SUBJECT_PREFIX)")
	root.AddCommand(newRequestCmd())
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
