// Command projector keeps the Postgres read models (schema auth) of the
// AUTH_EVENTS stream. Configured by AUTH_* variables (see -help):
// AUTH_DATABASE_URL is required, and AUTH_NATS_URL unless AUTH_MODE=dev.
// Run several: one leads, the others stand by. On SIGTERM it finishes the
// batch in flight (commit, ack) and stops. Serves /healthz, /readyz and
// /metrics on AUTH_HTTP_ADDR (docs/operations.md).
package main

import (
	"context"
	"log/slog"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/projector"
)

func main() { app.Main(config.Projector, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	projector.TuneRuntime(cfg.GOGC != "", cfg.GOMemLimit != "")

	n, err := app.ConnectNATS(cfg, "auth-projector", log)
	if err != nil {
		return err
	}
	defer n.Close()
	// The projector decides nothing by time (its times come from the
	// events); it follows the dev clock so that its log shows each advance
	// as the other components' do.
	_, stopClock, err := app.FollowClock(cfg, n, log)
	if err != nil {
		return err
	}
	defer stopClock()
	// The page is served first: the migration may wait up to a minute for
	// Postgres, and meanwhile /healthz answers and /readyz says why not.
	reg := ops.NewRegistry()
	page, closePing, err := app.ProjectorOps(cfg, n, reg)
	if err != nil {
		return err
	}
	defer closePing()
	started := page.Starting("migrating the read models")
	stopPage, err := app.ServeOps(cfg, page, log)
	if err != nil {
		return err
	}
	defer stopPage()
	p, err := app.StartProjector(ctx, cfg, n, ops.NewProjectorMetrics(reg), log)
	if err != nil {
		return err
	}
	started()
	<-ctx.Done()
	log.Info("stopping: finishing the batch in flight")
	return p.Stop()
}
