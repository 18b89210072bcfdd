package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// AppendFigures are the figures of one append load.
type AppendFigures struct {
	PerS      float64       // appends per second in the timed window
	Count     int64         // appends in the timed window
	Conflicts int64         // appends refused as stale by the writer's own earlier append, in the whole run
	Retries   int64         // appends (or last-sequence reads) that timed out and were tried again, in the whole run
	P50, P99  time.Duration // of one Append, in the timed window
}

// appendLoad runs writers concurrent appenders on store, one account each,
// each append with the account's expected last sequence, for warmup then
// the timed window d (the durability benchmark's one window).
func appendLoad(ctx context.Context, store *eventstore.JetStream, writers int, warmup, d time.Duration) (AppendFigures, error) {
	l, a := startAppenders(ctx, store, writers)
	defer l.stop()
	l.resume()
	if err := sleep(ctx, warmup); err != nil {
		return AppendFigures{}, err
	}
	mark := len(l.lat.all())
	count, took, err := window(ctx, 0, d, l.done.Load)
	l.pause()
	if err == nil {
		err = l.failed()
	}
	if err != nil {
		return AppendFigures{}, fmt.Errorf("append: %w", err)
	}
	ds := l.lat.all()[mark:]
	return AppendFigures{PerS: float64(count) / took.Seconds(), Count: count,
		P50: percentile(ds, 0.50), P99: percentile(ds, 0.99), Conflicts: a.conflicts.Load(), Retries: a.retries.Load()}, nil
}

// appenders is the state of raw appenders, one account per writer: the
// bound of what the commands can record (each append with the account's
// expected last sequence, as the commands send it).
type appenders struct {
	store     *eventstore.JetStream
	accs      []string
	seqs      []uint64 // each writer's own: read and written by it alone
	stale     []bool   // the writer must read its account's last sequence again
	conflicts atomic.Int64
	retries   atomic.Int64
}

// startAppenders starts writers appenders as a pausable load, paused.
func startAppenders(ctx context.Context, store *eventstore.JetStream, writers int) (*pausable, *appenders) {
	now := time.Now()
	a := &appenders{store: store, accs: make([]string, writers), seqs: make([]uint64, writers), stale: make([]bool, writers)}
	for w := range writers {
		a.accs[w] = events.NewID(now)
	}
	return startPausable(ctx, writers, a.step, nil), a
}

// step appends one event to writer w's account. A conflict (the writer's
// own earlier append landed although it saw it fail: on a cluster, a
// publish retried across a leader change) and a timeout (a loaded machine:
// the append may or may not have landed) are not failures: the writer reads
// its account's last sequence again, as the commands do, and goes on.
func (a *appenders) step(ctx context.Context, w, _ int) (bool, error) {
	acc := a.accs[w]
	if a.stale[w] {
		seq, err := a.store.LastSeq(ctx, acc)
		if err != nil {
			if isTimeout(ctx, err) {
				a.retries.Add(1)
				return false, nil
			}
			return false, err
		}
		a.seqs[w], a.stale[w] = seq, false
	}
	now := time.Now()
	env := events.Wrap(acc, events.PasswordVerified{LoginID: events.NewID(now), At: now}, now, events.Metadata{Channel: "web"})
	res, err := a.store.Append(ctx, acc, a.seqs[w], env, "")
	switch {
	case errors.Is(err, eventstore.ErrConflict):
		a.conflicts.Add(1)
		a.stale[w] = true
		return false, nil
	case isTimeout(ctx, err):
		a.retries.Add(1)
		a.stale[w] = true
		return false, nil
	case err != nil:
		return false, err
	}
	a.seqs[w] = res.Seq
	return true, nil
}
