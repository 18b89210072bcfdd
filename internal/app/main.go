package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ameli-auth/authsvc/internal/config"
)

// Main is what the cmd/* binaries share: the component's configuration
// from the environment and os.Args (refusing to start without what it
// needs), its structured logger, its effective configuration logged
// (secrets masked), and a context that SIGINT or SIGTERM ends. run starts
// the component and returns once it has stopped; an error is printed as
// "<component>: <error>" and the process exits 1.
func Main(comp config.Component, run func(ctx context.Context, cfg config.Config, log *slog.Logger) error) {
	if err := runMain(comp, run); err != nil {
		fmt.Fprintln(os.Stderr, comp.Name+":", err)
		os.Exit(1)
	}
}

func runMain(comp config.Component, run func(context.Context, config.Config, *slog.Logger) error) error {
	cfg, err := config.LoadComponent(comp, os.Args[1:], os.Stderr)
	if err != nil {
		return err
	}
	log := NewLogger(cfg.LogLevel, cfg.LogFormat).With("component", comp.Name)
	cfg.Log(log, comp)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg, log)
}
