// Command commands serves the authentication commands over NATS: it decides
// each request on the account's state and appends the facts to JetStream.
// Configured by AUTH_* variables (see -help): AUTH_NATS_URL and
// AUTH_SECRET_KEY (or AUTH_SECRET_KEY_FILE) are required unless AUTH_MODE=dev.
// With AUTH_DEV_CLOCK=1 it answers <prefix>.dev.clock.advance. Stops cleanly
// on SIGTERM. Serves /healthz, /readyz and /metrics on AUTH_HTTP_ADDR
// (docs/operations.md).
package main

import (
	"context"
	"log/slog"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
)

func main() { app.Main(config.Commands, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	n, err := app.ConnectNATS(cfg, "auth-commands", log)
	if err != nil {
		return err
	}
	defer n.Close()
	reg := ops.NewRegistry()
	c, err := app.StartCommands(ctx, cfg, n, &clock.Dev{}, ops.NewCommandMetrics(reg), log)
	if err != nil {
		return err
	}
	stopPage, err := app.ServeOps(cfg, app.CommandsOps(cfg, n, reg), log)
	if err != nil {
		_ = c.Service.Stop()
		return err
	}
	defer stopPage()
	<-ctx.Done()
	log.Info("stopping: finishing requests in flight")
	return c.Service.Stop()
}
