package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/bench"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/domain"
)

func newBenchCmd() *cobra.Command {
	var (
		quick, asJSON   bool
		databaseURL     string
		concurrency     int
		policyName      string
		cpuProfile      string
		memProfile      string
		only            []string
		projectorEvents int
		logLevel        string
		scale           bench.ScaleOptions
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure logins against the hash bound, command latency, the projector against COPY (make bench)",
		Long: `Runs the whole service in this process and measures, in the same run:
argon2id hashes per second with the policy's parameters on every core (the
bound), full web logins per second (password, code sent, code read from the
stream, code verified) and their ratio, code verifications per second with 64
clients and their p99 at 1,000 per second, raw JetStream appends, a command
on an account with 10,000 events against a new one, the projector's replay of
1,000,000 events against a raw COPY of the same rows, the notifier's mails per
second to a local SMTP server, and the peak resident memory.

By default it starts an embedded nats-server in a temporary directory and
creates a fresh database on the machine's Postgres (or a private server),
dropped at the end. --nats-url (only when given: AUTH_NATS_URL and the global
default are not used here) and --database-url point it at servers: it then
works on streams, consumers and a database of its own, and removes them.

It prints a table (field, value, target, met?) and, with --json, one JSON
object alone on the last line. docs/bench.md has the results and the profile.

--scale N runs the scale benchmark instead (docs/scale.md, "Measured"): a
nats-server process of its own (--nats-server, the pinned version built by
go build -o bin/ github.com/nats-io/nats-server/v2), N accounts imported
through account.import_batch, and at --scale-baseline and at N: bytes on disk,
the server's memory, its restart after a clean stop and after kill -9, cold
logins (p50, p99 and their ratio), the server's live heap once idle (the
duplicate window and its per-block subject state expired) with its heap
profile at N under --scale-profiles; then the projector's catch-up on a
fresh database.`,
		Example: `  authctl bench
  authctl bench --quick
  authctl bench --json
  authctl bench --only otp --cpuprofile otp.pprof
  go build -o bin/ github.com/nats-io/nats-server/v2 && authctl bench --scale 1000000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := strings.TrimSpace(mustFlag(cmd, "partitions"))
			if scale.Accounts > 0 {
				// The scale benchmark builds the layout asked for
				// (--partitions, the global flag, or AUTH_PARTITIONS).
				scale.Partitions = 1
				if p != "" {
					n, err := strconv.Atoi(p)
					if err != nil || n < 1 {
						return usagef("--partitions: %q is not a positive number", p)
					}
					scale.Partitions = n
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				scale.DatabaseURL, scale.Progress = databaseURL, cmd.ErrOrStderr()
				if logLevel != "" {
					scale.Logger = app.NewLogger(logLevel, config.LogText)
				}
				res, err := bench.Scale(ctx, scale)
				if err != nil {
					return err
				}
				return bench.WriteScaleReport(cmd.OutOrStdout(), res, asJSON)
			}
			// The other phases run on streams of their own, one partition
			// each: the figures would not be those of the layout asked for.
			if p != "" && p != "1" {
				return usagef("--partitions (AUTH_PARTITIONS) %s: authctl bench measures one partition, on streams of its own; "+
					"unset it, or use --scale (appends over N partitions: go test -run '^$' -bench PartitionedAppendOnCluster ./internal/eventstore, docs/scale.md)", p)
			}
			cfg, err := config.Load(config.Bench.Name, nil, io.Discard)
			if err != nil {
				return err
			}
			policy, ok := domain.PolicyByName(policyName)
			if !ok {
				return usagef("--policy: %q is neither seed nor strict", policyName)
			}
			cfg.DatabaseURL, cfg.PolicyName, cfg.Policy = databaseURL, policy.Name, policy
			opts := bench.Options{Quick: quick, DatabaseURL: databaseURL, Policy: policy, Concurrency: concurrency,
				Progress: cmd.ErrOrStderr(), From: cfg.SMTPFrom, PublicURL: cfg.PublicURL,
				ProjectorBatch: cfg.ProjectorBatch, GOGCSet: cfg.GOGC != "", GOMemLimitSet: cfg.GOMemLimit != ""}
			if cmd.Flags().Changed("nats-url") {
				opts.NATSURL, _ = cmd.Flags().GetString("nats-url")
				auth, err := config.LoadNATSClient()
				if err != nil {
					return err
				}
				opts.NATSAuth = app.NATSAuth(auth)
			}
			// The run's settings, as each component prints its own.
			fmt.Fprintln(cmd.ErrOrStderr(), "bench: effective configuration:", configLine(cfg.View(config.Bench)))
			for _, p := range only {
				opts.Phases = append(opts.Phases, strings.Split(p, ",")...)
			}
			if logLevel != "" {
				opts.Logger = app.NewLogger(logLevel, config.LogText)
			}
			// The projector's replay runs in a process of its own: its
			// profiles go to files of their own.
			if cpuProfile != "" {
				opts.ReplicaCPUProfile = cpuProfile + ".projector"
			}
			if memProfile != "" {
				opts.ReplicaHeapProfile = memProfile + ".projector"
			}
			opts.Sizes.ProjectorEvents = projectorEvents
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := bench.Run(ctx, opts)
			if err != nil {
				return err
			}
			if memProfile != "" {
				f, err := os.Create(memProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
					return err
				}
			}
			return bench.WriteReport(cmd.OutOrStdout(), res, asJSON)
		},
	}
	cmd.AddCommand(newBenchCompareCmd())
	f := cmd.Flags()
	f.BoolVar(&quick, "quick", false, "short sizes: a smoke run of well under a minute")
	f.BoolVar(&asJSON, "json", false, "print the figures as one JSON object on the last line")
	f.StringVar(&databaseURL, "database-url", config.Lookup(config.EnvDatabaseURL),
		"Postgres server to create the run's database on (AUTH_DATABASE_URL; default: the machine's, or a private one)")
	f.IntVar(&concurrency, "concurrency", 16, "concurrent clients running login flows")
	f.StringVar(&policyName, "policy", config.Lookup(config.EnvPolicy), "policy whose argon2id parameters are measured: seed or strict (AUTH_POLICY)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the run to this file")
	f.StringSliceVar(&only, "only", nil, "run only these phases: "+strings.Join(bench.AllPhases, ", "))
	f.IntVar(&projectorEvents, "projector-events", 0, "events the projector phase replays (default 1,000,000; --quick 20,000)")
	f.StringVar(&logLevel, "log-level", "", "show the components' logs at this level (debug, info, warn, error)")
	f.IntVar(&scale.Accounts, "scale", 0, "run the scale benchmark with this many accounts (docs/scale.md) instead of the other phases")
	f.IntVar(&scale.Baseline, "scale-baseline", 10_000, "--scale: the size the figures at N are compared with")
	f.StringVar(&scale.NATSServer, "nats-server", "bin/nats-server", "--scale: the nats-server executable, run as a process of its own")
	f.StringVar(&scale.Dir, "scale-dir", "", "--scale: where the server's store goes (default: the temporary directory); removed at the end")
	f.IntVar(&scale.Logins, "scale-logins", 500, "--scale: cold logins timed at each size")
	f.BoolVar(&scale.SkipProjector, "skip-projector", false, "--scale: leave out the projector's catch-up")
	f.BoolVar(&scale.Uncompressed, "uncompressed", false, "--scale: the stream and buckets without S2 (production compresses): cold reads without block decompression")
	f.DurationVar(&scale.DuplicateWindow, "duplicate-window", 0, "--scale: the events stream's duplicate window (default: the service's, 2m; at least 100ms)")
	f.DurationVar(&scale.SettleIdle, "scale-settle", 0, "--scale: idle time before the settled heap is read (default: the duplicate window or 2m, the longer, plus 15s; negative: none)")
	f.StringVar(&scale.ProfileDir, "scale-profiles", "var/scale", "--scale: where the nats-server heap profiles at N are written (empty: none)")
	return cmd
}

func newBenchCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare OLD NEW",
		Short: "Compare two runs of authctl bench --json, figure by figure",
		Long: `Reads two runs of authctl bench --json (files holding the JSON object, or
the whole output, whose last line it is) and prints each figure's old and new
value, the change in percent, and whether the change exceeds the spread
(max - min of the rounds) of both runs: "beyond both spreads", "~ (within
spread)", or "no spread" when a run measured the figure once or predates the
rounds (schema version 1). Then each run's warnings. docs/bench.md explains
the figures.`,
		Example: `  authctl bench --json > before.txt
  git switch my-branch && authctl bench --json > after.txt
  authctl bench compare before.txt after.txt`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data [2][]byte
			for i, name := range args {
				b, err := os.ReadFile(name)
				if err != nil {
					return err
				}
				data[i] = b
			}
			c, err := bench.Compare(data[0], data[1])
			if err != nil {
				return fmt.Errorf("%s, %s: %w", args[0], args[1], err)
			}
			return bench.WriteComparison(cmd.OutOrStdout(), c)
		},
	}
}

// configLine writes a View as KEY=value pairs, secrets masked.
func configLine(v config.View) string {
	parts := make([]string, 0, len(v))
	for _, it := range v {
		parts = append(parts, fmt.Sprintf("%s=%q", it.Env, it.Value))
	}
	return strings.Join(parts, " ")
}

// mustFlag is a string flag's value ("" when the command has none).
func mustFlag(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return v
}
