package bench

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// requestTries bounds the sends of one request that timed out (the first
// and two retries). Our choice: on a loaded machine a reply can miss its
// 30 s, but three in a row is a stuck run, not a slow one.
const requestTries = 3

// isTimeout says whether err is a timeout of one call (a request, a
// publish's acknowledgement), not the end of ctx: the work may or may not
// have been done, and trying again is how a client goes on.
func isTimeout(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// retryTimeouts runs fn until it does not time out, at most requestTries
// times, waiting 100 ms, then 200 ms between tries; each retry is counted
// in retries. fn must be safe to repeat (the same request_id, or an append
// with a message id).
func retryTimeouts(ctx context.Context, retries interface{ Add(int64) int64 }, fn func() error) error {
	var err error
	for try := range requestTries {
		if err = fn(); !isTimeout(ctx, err) {
			return err
		}
		if try == requestTries-1 {
			break
		}
		retries.Add(1)
		if serr := sleep(ctx, 100*time.Millisecond<<try); serr != nil { // a pause before the retry, not a wait for a condition
			return err
		}
	}
	return err
}
