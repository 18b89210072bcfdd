package cli

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
)

func newDevCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run the whole service in one process with embedded defaults (make run)",
		Long: `Runs the whole service on this machine: an embedded nats-server with
JetStream under ./var/nats (on AUTH_NATS_LISTEN, default 127.0.0.1:4222, or a
free port when taken), Postgres (AUTH_DATABASE_URL, else the local server,
else a private one under ./var/pg), the commands service, the projector, the
notifier with a mail catcher that prints each code, the dev clock, and a page
listing the mails on AUTH_HTTP_ADDR (default 127.0.0.1:8025, or near).
A demo account is created at the first start. Ctrl-C stops everything; the
next start keeps the data. Configured by the AUTH_* variables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadDev("authctl dev", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			log := app.NewLogger(cfg.LogLevel)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			d, err := app.StartDev(ctx, cfg, cmd.OutOrStdout(), log)
			if err != nil {
				return err
			}
			created, err := d.EnsureDemoAccount(ctx)
			if err != nil {
				d.Stop(context.Background())
				return err
			}
			out := cmd.OutOrStdout()
			url := d.NATS.Conn.ConnectedUrlRedacted()
			fmt.Fprintf(out, "\nameli-auth est prêt (mode développement).\n")
			fmt.Fprintf(out, "  Site web      %s\n", d.Web.URL)
			fmt.Fprintf(out, "  NATS          %s\n", url)
			if d.HTTPURL != "" {
				fmt.Fprintf(out, "  Mails reçus   %s/mails/\n", d.HTTPURL)
			}
			state := "existant"
			if created {
				state = "créé"
			}
			fmt.Fprintf(out, "  Compte démo   NIR %s, mot de passe %s (%s)\n", app.DemoNIR, app.DemoPassword, state)
			fmt.Fprintf(out, "\nDans un autre terminal :\n  go run ./cmd/authctl login --nats-url %s\n", url)
			fmt.Fprintf(out, "  go run ./cmd/authctl req --nats-url %s dev.clock.advance '{\"seconds\":900}'\n", url)
			fmt.Fprintf(out, "Ctrl-C pour arrêter.\n\n")
			<-ctx.Done()
			fmt.Fprintln(out, "Arrêt…")
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d.Stop(stopCtx)
			return nil
		},
	}
}
