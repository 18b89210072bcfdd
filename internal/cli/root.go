// Package cli is authctl: the operators' and developers' command line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

// Execute runs authctl with the process arguments and returns its exit
// status.
func Execute() int {
	return Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Run runs authctl with args and the given standard streams, and returns
// its exit status: 0 on success, 1 on an error (printed on errw unless the
// command already told the user), 2 on a usage error.
func Run(ctx context.Context, args []string, in io.Reader, out, errw io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errw)
	stopTracing := func() {}
	defer func() { stopTracing() }()
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		// authctl dev sets up the traces of the components it runs;
		// authctl bench measures without them.
		if cmd.Name() == "dev" || cmd.Name() == "bench" || cmd.HasParent() && cmd.Parent().Name() == "bench" {
			return nil
		}
		s := tracing.Settings{Service: tracing.ServiceName(config.Lookup("OTEL_SERVICE_NAME"), "authctl"),
			Endpoint: config.Lookup("OTEL_EXPORTER_OTLP_ENDPOINT"), TracesEndpoint: config.Lookup("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")}
		stop, err := app.SetupTracingWith(cmd.Context(), s, app.NewLogger("warn", config.LogText))
		if err != nil {
			return err
		}
		stopTracing = stop
		return nil
	}
	return exitCode(root.ExecuteContext(ctx), errw)
}

// exitError ends authctl with a status, after the command has said why.
type exitError struct {
	code int
	msg  string // printed when set
}

func (e *exitError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("exit status %d", e.code)
}

// silentExit is an exit status for a failure the command has already
// explained on its output (a refused login, rejected import rows).
func silentExit(code int) error { return &exitError{code: code} }

func exitCode(err error, errw io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(errw, "authctl:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(errw, "authctl:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError is a bad flag or argument: exit status 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "authctl",
		Short: "Operate and explore the ameli-style authentication service",
		Long: `authctl talks to the authentication service over NATS, as a front-end or
an operator would: send one command (req), log in from a terminal (login),
change or reset a password (password change, password reset), act as an
adviser on an account (account unlock, deactivate, set-affiliation,
revoke-biometrics), replay or follow the event stream for audits (events),
import accounts from a CSV file (account import), and run the whole service
on this machine (dev).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.String("nats-url", config.Lookup(config.EnvNATSURL),
		"NATS server URL (AUTH_NATS_URL; default: the dev mode running on --var-dir, else "+defaultNATSURL+")")
	pf.String("subject-prefix", config.Lookup(config.EnvPrefix), "subject prefix (AUTH_SUBJECT_PREFIX)")
	// Unset, the number the streams on the server say (eventstore.FindLayout).
	pf.String("partitions", config.LookupSet(config.EnvPartitions),
		"partitions of the events (AUTH_PARTITIONS, 1 to 64); default: as the events streams on the server say (docs/scale.md)")
	pf.String("var-dir", config.Lookup(config.EnvVarDir),
		"dev mode's data: its secret key, and dev.json, where a running dev mode says its NATS and Postgres URLs (AUTH_VAR_DIR)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRequestCmd(), newLoginCmd(), newPasswordCmd(), newEventsCmd(), newAccountCmd(), newDevCmd(), newMigrateCmd(), newProjectionsCmd(), newBenchCmd(), newProbeCmd(), newKeysCmd(), newNATSCmd(), newPartitionsCmd())
	return root
}
