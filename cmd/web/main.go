// Command web serves the web front-end (the seed's « Compte ameli web »):
// server-rendered pages that send the commands of a person at a browser to
// the commands service over NATS. Configured by AUTH_* variables (see
// -help): AUTH_NATS_URL (required) and AUTH_WEB_ADDR. `make run` starts it
// beside the rest. Stops cleanly on SIGTERM. Serves /healthz, /readyz and
// /metrics on AUTH_HTTP_ADDR (docs/operations.md). With AUTH_OIDC_ISSUER it
// also serves the OpenID Connect provider under the issuer's path
// (internal/oidc, docs/oidc.md). See docs/web.md.
package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
)

func main() { app.Main(config.Web, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	reg := ops.NewRegistry()
	w, err := app.StartWeb(cfg, cfg.NATSURL, ops.NewWebMetrics(reg), log)
	if err != nil {
		return err
	}
	stopPage, err := app.ServeOps(cfg, app.WebOps(cfg, w, reg), log)
	if err != nil {
		_ = w.Stop(context.Background())
		return err
	}
	defer stopPage()
	<-ctx.Done()
	log.Info("stopping: finishing requests in flight")
	stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return w.Stop(stopCtx)
}
