package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/projector"
)

// Projector is a running projector replica.
type Projector struct {
	*projector.Projector
	cancel context.CancelFunc
	done   chan error
}

// StartProjector migrates the read models (waiting for Postgres up to a
// minute) and starts a projector replica. Stop ends it after the batch in
// flight. Several replicas may run against one database: one leads, the
// others stand by.
// cfg.ProjectorBatch (AUTH_PROJECTOR_BATCH) bounds its transactions.
// metrics, if not nil, counts its batches and follows its leadership.
func StartProjector(ctx context.Context, cfg config.Config, n *NATS, metrics *ops.ProjectorMetrics, log *slog.Logger) (*Projector, error) {
	if cfg.DatabaseURL == "" {
		return nil, projector.ErrNoDatabase
	}
	if err := migrateWithRetry(ctx, cfg.DatabaseURL, time.Minute, log); err != nil {
		return nil, err
	}
	pc := projector.Config{DatabaseURL: cfg.DatabaseURL, JS: n.JS, Prefix: cfg.Prefix, Partitions: cfg.Partitions, BatchSize: cfg.ProjectorBatch, Logger: log}
	if metrics != nil {
		pc.AfterCommit = func(c projector.Committed) { metrics.Committed(c.Events, c.Took) }
	}
	p, err := projector.New(pc)
	if err != nil {
		return nil, err
	}
	if metrics != nil {
		metrics.FollowLeader(p.Leader)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	log.Info("projector started", "prefix", cfg.Prefix)
	return &Projector{Projector: p, cancel: cancel, done: done}, nil
}

// Stop asks the projector to stop and waits until its batch in flight is
// committed and acked (or abandoned, never half-applied).
func (p *Projector) Stop() error {
	p.cancel()
	return <-p.done
}

// MigrateReadModels runs the read models' migrations (`authctl migrate`).
func MigrateReadModels(ctx context.Context, cfg config.Config) error {
	return projector.Migrate(ctx, cfg.DatabaseURL)
}

// RebuildReadModels replays every partition's stream (cfg.Partitions) into
// fresh tables and swaps them in (`authctl projections rebuild`). The live
// projector may keep running.
func RebuildReadModels(ctx context.Context, cfg config.Config, n *NATS, log *slog.Logger, progress func(checkpoint, target uint64)) (projector.RebuildResult, error) {
	if err := projector.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return projector.RebuildResult{}, err
	}
	return projector.Rebuild(ctx, projector.RebuildConfig{DatabaseURL: cfg.DatabaseURL, JS: n.JS, Prefix: cfg.Prefix, Partitions: cfg.Partitions, Logger: log, Progress: progress})
}

// ReadModelStatus tells how far the read models are behind the stream
// (`authctl projections status`).
func ReadModelStatus(ctx context.Context, cfg config.Config, n *NATS) (projector.Status, error) {
	return projector.ReadStatus(ctx, projector.StatusConfig{DatabaseURL: cfg.DatabaseURL, JS: n.JS, Prefix: cfg.Prefix, Partitions: cfg.Partitions})
}

func migrateWithRetry(ctx context.Context, url string, patience time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(patience)
	wait := 200 * time.Millisecond
	for {
		err := projector.Migrate(ctx, url)
		if err == nil {
			return nil
		}
		if time.Now().Add(wait).After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("read models: %w", err)
		}
		log.Warn("read models: migration failed, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
