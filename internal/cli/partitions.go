package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/repartition"
)

func newPartitionsCmd() *cobra.Command {
	parent := &cobra.Command{Use: "partitions", Short: "The partitions of the events (AUTH_PARTITIONS)"}
	migrate := &cobra.Command{
		Use:   "migrate --from-partitions A --to-partitions B --commands-stopped",
		Short: "Move every event and NIR index entry from A partitions to B (offline; resumable)",
		Long: `Changes the number of partitions of the events on the server, with every
commands service stopped (docs/scale.md, "Changing N"). The old streams and NIR
index buckets are first mirrored aside (AUTH_MIGRATE_EVENTS_<i>,
AUTH_MIGRATE_NIR_INDEX_<i>) and must not move meanwhile; then they are deleted,
the new layout's streams and buckets are created (--replicas, --placement), every
event is copied in its old stream's order into its account's new partition
with its old message id, and every NIR index entry into its key's new
partition. Snapshots are not copied: the commands service rebuilds them. The
mirrors and the record AUTH_MIGRATE are deleted once the new streams are
checked to hold exactly what was copied.

A run stopped anywhere (Ctrl-C, a crash, a lost connection) is resumed by
running the same command again: AUTH_MIGRATE records the step and each
stream's progress, and a resumed run looks for the events it might have
copied after its last record before copying them again.

It refuses to start while a commands service answers on this NATS, when the
server's layout is not --from-partitions, when a stream of the new layout
already holds messages, and stops before deleting anything when an old stream
grows during the copy aside. The NATS user needs the whole JetStream API,
stream deletes included, and to publish on <prefix>.events.>: no user of
deploy/nats/users.conf may, so add a one-off user for the migration.

Afterwards: start the commands services, projectors and notifiers with
AUTH_PARTITIONS=B (and the NATS nodes with users-B.conf), and rebuild the read
models (authctl projections rebuild): their checkpoints are sequences of the
old streams.`,
		Example: `  authctl partitions migrate --from-partitions 1 --to-partitions 4 --commands-stopped
  authctl partitions migrate --from-partitions 4 --to-partitions 8 --commands-stopped --replicas 3 --placement 'group:a;group:b'`,
		Args: cobra.NoArgs,
	}
	f := migrate.Flags()
	from := f.Int("from-partitions", 0, "partitions of the events now on the server (AUTH_PARTITIONS before)")
	to := f.Int("to-partitions", 0, "partitions after the migration (AUTH_PARTITIONS after), 1 to 64")
	stopped := f.Bool("commands-stopped", false, "say that every commands service (and account import) is stopped: required")
	replicas := f.String("replicas", config.Lookup("AUTH_STREAM_REPLICAS"), "replicas of the new streams and buckets (AUTH_STREAM_REPLICAS)")
	placement := f.String("placement", config.Lookup(config.EnvPlacement), "placement tags of the new partitions (AUTH_PARTITION_PLACEMENT, docs/scale.md)")
	migrate.RunE = func(cmd *cobra.Command, _ []string) error {
		if *from < 1 || *to < 1 || *from > contract.MaxPartitions || *to > contract.MaxPartitions || *from == *to {
			return usagef("--from-partitions %d, --to-partitions %d: want two different numbers from 1 to %d", *from, *to, contract.MaxPartitions)
		}
		if !*stopped {
			return usagef("stop every commands service (and any account import) first, then say so with --commands-stopped")
		}
		r, err := strconv.Atoi(strings.TrimSpace(*replicas))
		if err != nil || r < 1 || r > 5 {
			return usagef("--replicas (AUTH_STREAM_REPLICAS): %q is not a number from 1 to 5", *replicas)
		}
		pl, err := contract.ParsePlacement(*placement)
		if err != nil {
			return usagef("--placement (AUTH_PARTITION_PLACEMENT): %v", err)
		}
		nc, prefix, err := connect(cmd, asAdmin)
		if err != nil {
			return err
		}
		defer nc.Close()
		errw := cmd.ErrOrStderr()
		bar := newProgress(errw, "events", 0)
		rep, err := repartition.Run(cmd.Context(), nc, repartition.Options{
			Prefix: prefix, From: *from, To: *to, Replicas: r, Placement: pl,
			Progress: func(done, total int) {
				bar.SetTotal(int64(total))
				bar.Set(int64(done))
			},
			Log: func(format string, args ...any) {
				bar.Done()
				fmt.Fprintf(errw, "authctl: "+format+"\n", args...)
			},
		})
		bar.Done()
		if err != nil {
			if errors.Is(err, repartition.ErrRefused) {
				return err
			}
			return fmt.Errorf("%w (run the same command again to resume)", err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "migrated from %d to %d partitions: %d events (%d copied by this run, %d found already copied), %d NIR index entries; skipped %d messages that are not events and %d login attempts past their retention\n",
			*from, *to, rep.Total, rep.Copied, rep.Present+rep.Duplicates, rep.IndexKeys, rep.NotEvents, rep.Expired)
		fmt.Fprintf(cmd.OutOrStdout(), "next: AUTH_PARTITIONS=%d for every component (and the NATS nodes' users-%d.conf), then authctl projections rebuild\n", *to, *to)
		return nil
	}
	parent.AddCommand(migrate)
	return parent
}
