package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
)

func newDevCmd() *cobra.Command {
	var cluster bool
	var binDir string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole service in one process with embedded defaults (make run)",
		Long: `Runs the whole service on this machine: an embedded nats-server with
JetStream under ./var/nats (on AUTH_NATS_LISTEN, default 127.0.0.1:4222, or a
free port when taken), Postgres (AUTH_DATABASE_URL, else the local server,
else a private one under ./var/pg), the commands service, the projector, the
notifier with a mail catcher that prints each code, the dev clock, and a page
listing the mails on AUTH_HTTP_ADDR (default 127.0.0.1:8025, or near).
A demo account is created at the first start. Ctrl-C stops everything; the
next start keeps the data, and the dev clock where it was (its offset is
kept in the AUTH_DEV_CLOCK bucket). The banner shows the demo password only
while it still opens the account, and the Postgres URL with its credentials
masked. While it runs, <var dir>/dev.json tells the other authctl commands
(login, req, events, projections status…) its NATS and Postgres URLs, so
they need no flag. Configured by the AUTH_* variables (authctl dev prints
the effective configuration at start, secrets masked).

With --cluster (make cluster) it runs the production topology instead, each
component the real binary in its own process: three nats-server nodes
clustered on 127.0.0.1 (JetStream, the stream and buckets with 3 replicas,
sync always, stores under <var dir>/cluster), commands x2, projector x2 (one
leads, one stands by), the notifier and the web front-end, in production mode
with the dev clock on; authctl keeps the mail catcher, the database
(ameli_auth_cluster) and the demo account. Each child's lines come here
prefixed with its name. <var dir>/cluster.json lists every address while it
runs, and the other authctl commands find the cluster there. The binaries
come from --bin-dir (make cluster builds them into bin/). See docs/dev.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadDev("authctl dev", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if cluster {
				return runCluster(cmd, cfg, binDir)
			}
			log := app.NewLogger(cfg.LogLevel, cfg.LogFormat)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			stopTracing, err := app.SetupTracing(ctx, cfg, "authctl dev", log)
			if err != nil {
				return err
			}
			defer stopTracing()
			d, err := app.StartDev(ctx, cfg, cmd.OutOrStdout(), log)
			if err != nil {
				return err
			}
			created, err := d.EnsureDemoAccount(ctx)
			if err != nil {
				d.Stop(context.Background())
				return err
			}
			truth, err := d.DemoPasswordTruth(ctx)
			if err != nil {
				d.Stop(context.Background())
				return err
			}
			writeBanner(cmd.OutOrStdout(), d, truth, created)
			<-ctx.Done()
			fmt.Fprintln(cmd.OutOrStdout(), "Arrêt…")
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d.Stop(stopCtx)
			return nil
		},
	}
	cmd.Flags().BoolVar(&cluster, "cluster", false, "run the production topology as local processes (make cluster)")
	cmd.Flags().StringVar(&binDir, "bin-dir", "", "with --cluster: where nats-server, commands, projector, notifier and web are (default: beside authctl, else ./bin)")
	return cmd
}

// writeBanner says where everything is. It never shows a password that no
// longer opens the demo account, nor a credential of the database URL.
func writeBanner(out io.Writer, d *app.Dev, truth app.DemoTruth, created bool) {
	url := d.NATS.Conn.ConnectedUrlRedacted()
	fmt.Fprintf(out, "\nameli-auth est prêt (mode développement).\n")
	if d.Web != nil {
		fmt.Fprintf(out, "  Site web      %s\n", d.Web.URL)
		fmt.Fprintf(out, "  OpenID (exemple de client) %s/dev/rp/\n", d.Web.URL)
	}
	fmt.Fprintf(out, "  NATS          %s\n", url)
	fmt.Fprintf(out, "  Postgres      %s\n", config.Redact(d.DB.URL))
	if d.HTTPURL != "" {
		fmt.Fprintf(out, "  Mails reçus   %s/mails/\n", d.HTTPURL)
	}
	if off := d.Clock.Offset(); off > 0 {
		fmt.Fprintf(out, "  Horloge dev   %s d'avance : il est %s (heure de Paris)\n", off, stampParis(d.Clock.Now()))
	}
	writeDemoLine(out, truth, created, "ce mode dev")
	fmt.Fprintf(out, "\nDans un autre terminal (authctl trouve ce mode dev par %s) :\n", app.DevStatePath(d.Config.VarDir))
	fmt.Fprintf(out, "  go run ./cmd/authctl login\n")
	fmt.Fprintf(out, "  go run ./cmd/authctl req dev.clock.advance '{\"seconds\":900}'\n")
	fmt.Fprintf(out, "  go run ./cmd/authctl projections status\n")
	fmt.Fprintf(out, "Ailleurs : --nats-url %s.\nCtrl-C pour arrêter.\n\n", url)
}

// writeDemoLine is the banner's line about the demo account: its NIR, and
// its password while it still opens the account. where names the stack
// ("ce mode dev", "cette grappe") for a password it does not know.
func writeDemoLine(out io.Writer, truth app.DemoTruth, created bool, where string) {
	state := "existant"
	if created {
		state = "créé"
	}
	switch truth.Hidden {
	case "":
		fmt.Fprintf(out, "  Compte démo   NIR %s, mot de passe %s (%s)\n", truth.NIR, truth.Password, state)
	case "changed":
		fmt.Fprintf(out, "  Compte démo   NIR %s, mot de passe changé depuis sa création : non affiché\n", truth.NIR)
	case "deactivated":
		fmt.Fprintf(out, "  Compte démo   NIR %s, compte désactivé\n", truth.NIR)
	default:
		fmt.Fprintf(out, "  Compte démo   NIR %s, mot de passe inconnu de %s : non affiché\n", truth.NIR, where)
	}
}
