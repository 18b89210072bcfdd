package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// append measures raw appends to the events stream, each with the
// account's expected last sequence as the commands send it, by
// AppendClients concurrent writers, one account each: the bound of what
// the commands can record.
func (r *runner) append(ctx context.Context) error {
	var done atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for range r.sizes.AppendClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now()
			acc := events.NewID(now)
			var seq uint64
			for runCtx.Err() == nil {
				env := events.Wrap(acc, events.PasswordVerified{LoginID: events.NewID(now), At: now}, now, events.Metadata{Channel: "web"})
				res, err := r.store.Append(runCtx, acc, seq, env, "")
				if err != nil {
					if runCtx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				seq = res.Seq
				done.Add(1)
			}
		}()
	}
	count, took, err := window(runCtx, r.sizes.Warmup, r.sizes.AppendTime, done.Load)
	cancel()
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("append: %w", firstErr)
	}
	if err != nil {
		return err
	}
	r.res.AppendPerS = float64(count) / took.Seconds()
	r.res.Details.Appends = int(count)
	r.progress("append: %.0f appends/s (%d clients, one account each)", r.res.AppendPerS, r.sizes.AppendClients)
	return nil
}
