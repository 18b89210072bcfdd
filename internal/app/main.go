package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/internal/tracing"
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
	stopTracing, err := SetupTracing(ctx, cfg, comp.Name, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	return run(ctx, cfg, log)
}

// SetupTracing installs the component's trace exporter when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (internal/tracing), and nothing otherwise. The returned stop flushes the
// spans not yet sent, for at most 5 s: call it after the component stopped.
func SetupTracing(ctx context.Context, cfg config.Config, component string, log *slog.Logger) (stop func(), err error) {
	return SetupTracingWith(ctx, TracingSettings(cfg, component), log)
}

// SetupTracingWith is SetupTracing with the settings given.
func SetupTracingWith(ctx context.Context, s tracing.Settings, log *slog.Logger) (stop func(), err error) {
	shutdown, err := tracing.Setup(ctx, s, log)
	if err != nil {
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			log.Warn("traces: last spans not flushed", "err", err)
		}
	}, nil
}

// TracingSettings are the tracing settings of cfg for a component.
func TracingSettings(cfg config.Config, component string) tracing.Settings {
	return tracing.Settings{Service: tracing.ServiceName(cfg.OTelServiceName, component),
		Endpoint: cfg.OTLPEndpoint, TracesEndpoint: cfg.OTLPTracesEndpoint}
}

// logKeyIDs says which secret keys the component holds, by their key ids
// (never the keys): during a rotation an operator checks each component's
// start line against `authctl keys ids` (docs/keys.md).
func logKeyIDs(log *slog.Logger, keys *secrets.Keys) {
	ids := keys.IDs()
	log.Info("secret keys", "current", ids[0], "previous", ids[1:])
}
