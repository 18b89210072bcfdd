package cli

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/projector"
)

// databaseFlag adds --database-url, defaulting to AUTH_DATABASE_URL.
func databaseFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("database-url", config.Lookup(config.EnvDatabaseURL),
		"Postgres of the read models (AUTH_DATABASE_URL; default: the dev mode's running on --var-dir)")
}

// readModelConfig is --database-url (or AUTH_DATABASE_URL), else the
// database of the dev mode running on --var-dir.
func readModelConfig(cmd *cobra.Command, databaseURL string) (config.Config, error) {
	if databaseURL == "" {
		if st, ok := runningDev(cmd); ok {
			databaseURL = st.DatabaseURL
		}
	}
	if databaseURL == "" {
		varDir, _ := cmd.Flags().GetString("var-dir")
		return config.Config{}, fmt.Errorf("no database: set AUTH_DATABASE_URL or --database-url, or start dev mode (make run) on --var-dir %s", varDir)
	}
	prefix, _ := cmd.Flags().GetString("subject-prefix")
	return config.Config{DatabaseURL: databaseURL, Prefix: prefix, NATSURL: natsURL(cmd)}, nil
}

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "migrate",
		Short:   "Run the read models' migrations (the projector also runs them at start)",
		Example: "  authctl migrate --database-url postgres://postgres@127.0.0.1:5432/ameli_auth_dev",
		Args:    cobra.NoArgs,
	}
	db := databaseFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := readModelConfig(cmd, *db)
		if err != nil {
			return err
		}
		if err := app.MigrateReadModels(cmd.Context(), cfg); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "read models migrated")
		return nil
	}
	return cmd
}

func newProjectionsCmd() *cobra.Command {
	parent := &cobra.Command{Use: "projections", Short: "Read models: how far behind the stream, and a full rebuild"}

	status := &cobra.Command{
		Use:     "status",
		Short:   "Show the read models' checkpoint and lag (events and seconds)",
		Example: "  authctl projections status --nats-url nats://127.0.0.1:4222 --database-url postgres://...",
		Args:    cobra.NoArgs,
	}
	statusDB := databaseFlag(status)
	status.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := readModelConfig(cmd, *statusDB)
		if err != nil {
			return err
		}
		n, err := connectJS(cmd)
		if err != nil {
			return err
		}
		defer n.Close()
		if cfg.Partitions, err = readModelPartitions(cmd, n); err != nil {
			return err
		}
		st, err := app.ReadModelStatus(cmd.Context(), cfg, n)
		if err != nil {
			return err
		}
		printStatus(cmd.OutOrStdout(), st)
		return nil
	}

	rebuild := &cobra.Command{
		Use:   "rebuild",
		Short: "Replay the whole stream into fresh tables and swap them in atomically",
		Long: `Replays AUTH_EVENTS from its first event into fresh tables (schema
auth_rebuild), then swaps them for the live ones in one transaction: readers see
the old tables or the new ones, never a half-built model. A running projector
goes on from the new tables' checkpoint. With several partitions
(AUTH_PARTITIONS, or as the streams say), every partition's stream
AUTH_EVENTS_<p> is replayed, each into its own checkpoint.`,
		Example: "  authctl projections rebuild --database-url postgres://...",
		Args:    cobra.NoArgs,
	}
	rebuildDB := databaseFlag(rebuild)
	rebuild.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := readModelConfig(cmd, *rebuildDB)
		if err != nil {
			return err
		}
		n, err := connectJS(cmd)
		if err != nil {
			return err
		}
		defer n.Close()
		if cfg.Partitions, err = readModelPartitions(cmd, n); err != nil {
			return err
		}
		bar := newProgress(cmd.ErrOrStderr(), "rebuild", 0)
		res, err := app.RebuildReadModels(cmd.Context(), cfg, n, slog.New(slog.NewTextHandler(io.Discard, nil)),
			func(checkpoint, target uint64) {
				bar.SetTotal(int64(target))
				bar.Set(int64(checkpoint))
			})
		bar.Done()
		if err != nil {
			return err
		}
		if len(res.Checkpoints) > 1 {
			fmt.Fprintf(cmd.OutOrStdout(), "rebuilt: %d events replayed from %d partitions, checkpoints %v, in %s\n",
				res.Events, len(res.Checkpoints), res.Checkpoints, res.Duration.Round(time.Millisecond))
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "rebuilt: %d events replayed, checkpoint %d, in %s\n", res.Events, res.Checkpoint, res.Duration.Round(time.Millisecond))
		return nil
	}
	parent.AddCommand(status, rebuild)
	return parent
}

// connectJS connects with the global flags, for commands that read the stream.
func connectJS(cmd *cobra.Command) (*app.NATS, error) {
	nc, _, err := connect(cmd, asAdmin)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &app.NATS{Conn: nc, JS: js}, nil
}

// readModelPartitions is the number of partitions of the events the read
// models follow: --partitions (AUTH_PARTITIONS), else the streams'.
func readModelPartitions(cmd *cobra.Command, n *app.NATS) (int, error) {
	l, err := eventsLayout(cmd.Context(), cmd, n.JS)
	return l.N(), err
}

// printStatus writes the read models' status: the totals, and with several
// partitions a line for each.
func printStatus(out io.Writer, st projector.Status) {
	fmt.Fprintf(out, "checkpoint      %d (stream at %d)\n", st.Checkpoint, st.StreamLastSeq)
	fmt.Fprintf(out, "lag             %d events, %.1f s\n", st.LagEvents, st.LagSeconds)
	if !st.LastEventAt.IsZero() {
		fmt.Fprintf(out, "last applied    %s (heure de Paris)\n", domain.FormatDash(st.LastEventAt))
	}
	leader := st.Leader
	if leader == "" {
		leader = "none running"
	}
	fmt.Fprintf(out, "active replica  %s\n", leader)
	fmt.Fprintf(out, "rebuilding      %v\n", st.Rebuilding)
	fmt.Fprintf(out, "schema          %d (latest %d)\n", st.SchemaVersion, st.LatestMigration)
	if st.Fraud.Found {
		fmt.Fprintf(out, "fraud follower  %d events, %.1f s behind (consumer %s)\n", st.Fraud.LagEvents, st.Fraud.LagSeconds, st.Fraud.Consumer)
	} else {
		fmt.Fprintf(out, "fraud follower  not started (no consumer %s)\n", st.Fraud.Consumer)
	}
	if len(st.Partitions) < 2 {
		return
	}
	fmt.Fprintf(out, "\n%-9s  %-16s  %10s  %10s  %10s  %8s  %s\n", "PARTITION", "STREAM", "CHECKPOINT", "STREAM_END", "LAG", "LAG_S", "LEADER")
	for _, p := range st.Partitions {
		leader := p.Leader
		if leader == "" {
			leader = "-"
		}
		fmt.Fprintf(out, "%-9d  %-16s  %10d  %10d  %10d  %8.1f  %s\n", p.Partition, p.Stream, p.Checkpoint, p.StreamLastSeq, p.LagEvents, p.LagSeconds, leader)
	}
}
