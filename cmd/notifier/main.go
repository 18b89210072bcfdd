// Command notifier sends the service's emails: it follows AUTH_EVENTS
// through its durable consumer "notifier" and mails each event that asks
// for one, once. Configured by AUTH_* variables (see -help): AUTH_DATABASE_URL
// is required; so are AUTH_NATS_URL, AUTH_SECRET_KEY (or _FILE) and
// AUTH_SMTP_ADDR unless AUTH_MODE=dev, where without AUTH_SMTP_ADDR the mails
// go to a built-in catcher, printed on the console and listed at
// http://AUTH_HTTP_ADDR/mails/. With AUTH_DEV_CLOCK=1 it follows
// <prefix>.dev.clock.advance. Stops cleanly on SIGTERM. Serves /healthz,
// /readyz and /metrics on AUTH_HTTP_ADDR too (docs/operations.md).
package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
)

func main() { app.Main(config.Notifier, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	n, err := app.ConnectNATS(cfg, "auth-notifier", log)
	if err != nil {
		return err
	}
	defer n.Close()
	clk, stopClock, err := app.FollowClock(cfg, n, log)
	if err != nil {
		return err
	}
	defer stopClock()
	reg := ops.NewRegistry()
	x, err := app.StartNotifier(ctx, cfg, n, clk, ops.NewNotifierMetrics(reg), log)
	if err != nil {
		return err
	}
	stopPage, err := app.ServeOps(cfg, app.NotifierOps(cfg, n, x, reg), log)
	if err != nil {
		_ = x.Stop(context.Background())
		return err
	}
	defer stopPage()
	<-ctx.Done()
	log.Info("stopping: finishing the mails in flight")
	stopCtx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	return x.Stop(stopCtx)
}
