package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// append measures raw appends to the events stream, each with the
// account's expected last sequence as the commands send it, by
// AppendClients concurrent writers, one account each: the bound of what
// the commands can record.
func (r *runner) append(ctx context.Context) error {
	f, err := appendLoad(ctx, r.store, r.sizes.AppendClients, r.sizes.Warmup, r.sizes.AppendTime)
	if err != nil {
		return err
	}
	r.res.AppendPerS = f.PerS
	r.res.Details.Appends = int(f.Count)
	r.progress("append: %.0f appends/s, p99 %s (%d clients, one account each)", r.res.AppendPerS, f.P99, r.sizes.AppendClients)
	return nil
}

// AppendFigures are the figures of one append load.
type AppendFigures struct {
	PerS      float64       // appends per second in the timed window
	Count     int64         // appends in the timed window
	Conflicts int64         // appends refused as stale by the writer's own earlier append, in the whole run
	P50, P99  time.Duration // of one Append, in the timed window
}

// appendLoad runs writers concurrent appenders on store, one account each,
// each append with the account's expected last sequence, for warmup then
// the timed window d.
func appendLoad(ctx context.Context, store *eventstore.JetStream, writers int, warmup, d time.Duration) (AppendFigures, error) {
	var done, conflicts atomic.Int64
	var timing atomic.Bool // past the warm-up: latencies count
	var lat latencies
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now()
			acc := events.NewID(now)
			var seq uint64
			for runCtx.Err() == nil {
				env := events.Wrap(acc, events.PasswordVerified{LoginID: events.NewID(now), At: now}, now, events.Metadata{Channel: "web"})
				t0 := time.Now()
				res, err := store.Append(runCtx, acc, seq, env, "")
				if errors.Is(err, eventstore.ErrConflict) {
					// The writer's own earlier append landed although it
					// saw it fail (on a cluster, a publish retried across a
					// leader change): catch up, as the commands do.
					conflicts.Add(1)
					if seq, err = store.LastSeq(runCtx, acc); err == nil {
						continue
					}
				}
				if err != nil {
					if runCtx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				if timing.Load() {
					lat.add(time.Since(t0))
				}
				seq = res.Seq
				done.Add(1)
			}
		}()
	}
	count, took, err := window(runCtx, warmup, d, func() int64 { timing.Store(true); return done.Load() })
	cancel()
	wg.Wait()
	if firstErr != nil {
		return AppendFigures{}, fmt.Errorf("append: %w", firstErr)
	}
	if err != nil {
		return AppendFigures{}, err
	}
	ds := lat.all()
	return AppendFigures{PerS: float64(count) / took.Seconds(), Count: count,
		P50: percentile(ds, 0.50), P99: percentile(ds, 0.99), Conflicts: conflicts.Load()}, nil
}
