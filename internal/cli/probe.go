package cli

import (
	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/ops"
)

// newProbeCmd is the container health check of images without a shell or
// an HTTP client (the distroless image of docker-compose.yml): exit 0 when
// the ops page answers 200, 1 otherwise, with the status and the page's
// reason on stderr, which docker keeps in the container's health log.
func newProbeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 when an ops page (/readyz, /healthz) answers 200: a health check without a shell",
		Long: `probe asks one ops page endpoint (docs/operations.md) once and exits 0 when it
answers 200 OK, 1 otherwise (the status and the page's one-line reason on
stderr). It is the health check of the components' containers, whose image
has no shell and no curl (docker-compose.yml). It gives up after 3 seconds.`,
		Example: "  authctl probe http://127.0.0.1:9090/readyz",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return ops.Probe(cmd.Context(), args[0])
		},
	}
}
