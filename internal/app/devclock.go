package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
)

// DevClockBucket is the JetStream KV bucket that keeps the dev clock's
// offset, one key per subject prefix ("auth.offset"). The commands service
// answers <prefix>.dev.clock.advance and writes the new offset there before
// it replies; the projector and the notifier follow the key; every
// component, and `authctl dev` started again, starts from it. So a restart
// never takes the clock back to the real time, which brought back blocks
// and codes that had ended (issue 12). The bucket exists only where the dev
// clock was turned on.
const DevClockBucket = "AUTH_DEV_CLOCK"

func devClockKey(prefix string) string { return prefix + ".offset" }

// keptOffset is the value of the key.
type keptOffset struct {
	OffsetNS int64  `json:"offset_ns"`
	Offset   string `json:"offset"` // for people reading the bucket
}

// openDevClockBucket opens the bucket, creating it with replicas copies
// (AUTH_STREAM_REPLICAS: on a 3-node cluster, one node's loss must not
// take the kept offset with it, nor stop a restarted component that reads
// it). Only the owner, the commands service that writes the offset,
// changes an existing bucket's replicas, and only when they differ; a
// follower opens the bucket as it is, so that two components configured
// with different replicas never undo each other's update.
func openDevClockBucket(ctx context.Context, js jetstream.JetStream, replicas int, owner bool) (jetstream.KeyValue, error) {
	want := jetstream.KeyValueConfig{Bucket: DevClockBucket, History: 1, Replicas: max(1, replicas),
		Description: "the dev clock's offset (AUTH_DEV_CLOCK=1), kept across restarts"}
	kv, err := js.KeyValue(ctx, DevClockBucket)
	switch {
	case err == nil && !owner:
		return kv, nil
	case err == nil:
		st, serr := kv.Status(ctx)
		if serr != nil {
			return nil, fmt.Errorf("dev clock bucket %s: %w", DevClockBucket, serr)
		}
		if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas == want.Replicas {
			return kv, nil
		}
		kv, err = js.UpdateKeyValue(ctx, want)
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err = js.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) { // another component created it meanwhile
			kv, err = js.KeyValue(ctx, DevClockBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dev clock bucket %s: %w", DevClockBucket, err)
	}
	return kv, nil
}

func decodeOffset(e jetstream.KeyValueEntry) (time.Duration, error) {
	var k keptOffset
	if err := json.Unmarshal(e.Value(), &k); err != nil {
		return 0, fmt.Errorf("dev clock offset %s: %w", e.Key(), err)
	}
	return time.Duration(k.OffsetNS), nil
}

// KeptDevClockOffset is the dev clock's kept offset under prefix: 0 where
// no dev clock ever ran. It creates nothing (authctl events reads it).
func KeptDevClockOffset(ctx context.Context, js jetstream.JetStream, prefix string) (time.Duration, error) {
	kv, err := js.KeyValue(ctx, DevClockBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	e, err := kv.Get(ctx, devClockKey(prefix))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeOffset(e)
}

// KeepDevClock starts c at the kept offset, then keeps each offset an
// accepted advance gives it. The commands service's clock is kept so: it is
// the one that answers the advance requests. replicas is the bucket's
// (AUTH_STREAM_REPLICAS).
func KeepDevClock(ctx context.Context, js jetstream.JetStream, prefix string, replicas int, c *clock.Dev, log *slog.Logger) error {
	kv, err := openDevClockBucket(ctx, js, replicas, true)
	if err != nil {
		return err
	}
	kept, err := KeptDevClockOffset(ctx, js, prefix)
	if err != nil {
		return err
	}
	if c.Raise(kept) {
		log.Warn("dev clock starts where it was left", "offset", kept.String(), "now", c.Now())
	}
	c.OnAdvance(func(offset time.Duration) {
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := raiseKept(wctx, kv, devClockKey(prefix), offset); err != nil {
			log.Error("dev clock offset not kept: a restart would take the clock back", "offset", offset.String(), "err", err)
		}
	})
	return nil
}

// raiseKept writes offset unless the key already holds a larger one
// (another commands instance got there first), with the revision checks
// that keep two writers from taking it back. Every commands instance keeps
// the offset it was told; on a replicated bucket a read right after the
// other's write may come from a replica that has not applied it yet, and
// the update is refused for a stale revision: it reads again a little
// later (5 ms, doubling up to 0.5 s: 10 tries within about 1.6 s).
func raiseKept(ctx context.Context, kv jetstream.KeyValue, key string, offset time.Duration) error {
	val, _ := json.Marshal(keptOffset{OffsetNS: int64(offset), Offset: offset.String()})
	pause := 5 * time.Millisecond
	for try := range 10 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
			pause = min(2*pause, 500*time.Millisecond)
		}
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err = kv.Create(ctx, key, val); err == nil {
				return nil
			}
		case err != nil:
			return err
		default:
			if cur, derr := decodeOffset(e); derr == nil && cur >= offset {
				return nil
			}
			if _, err = kv.Update(ctx, key, val, e.Revision()); err == nil {
				return nil
			}
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) && !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
	return errors.New("dev clock offset: too many concurrent writers")
}

// FollowDevClock moves c with the kept offset: to it at once (before it
// returns), then with each advance the commands service accepts. A refused
// request is never kept, so every component refuses what the commands
// service refuses. stop ends the following. replicas is the bucket's when
// this component creates it (AUTH_STREAM_REPLICAS).
func FollowDevClock(ctx context.Context, js jetstream.JetStream, prefix string, replicas int, c *clock.Dev, log *slog.Logger) (stop func(), err error) {
	kv, err := openDevClockBucket(ctx, js, replicas, false)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(context.WithoutCancel(ctx), devClockKey(prefix))
	if err != nil {
		return nil, fmt.Errorf("follow dev clock: %w", err)
	}
	apply := func(e jetstream.KeyValueEntry, initial bool) {
		if e.Operation() != jetstream.KeyValuePut {
			return
		}
		offset, err := decodeOffset(e)
		if err != nil {
			log.Warn("dev clock: unreadable offset ignored", "err", err)
			return
		}
		if c.Raise(offset) {
			if initial {
				log.Warn("dev clock starts where it was left", "offset", offset.String(), "now", c.Now())
			} else {
				log.Warn("dev clock advanced", "now", c.Now(), "offset", offset.String())
			}
		}
	}
	// The kept value comes first, then a nil entry: apply it before the
	// component starts.
	timeout := time.After(10 * time.Second)
initial:
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("follow dev clock: watch closed")
			}
			if e == nil {
				break initial
			}
			apply(e, true)
		case <-timeout:
			_ = w.Stop()
			return nil, errors.New("follow dev clock: no answer from the KV bucket in 10 s")
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e != nil {
				apply(e, false)
			}
		}
	}()
	return func() { _ = w.Stop(); <-done }, nil
}

// DevClockWarning is the line every component logs at start when it runs on
// the dev clock: its time decisions can then be moved by anyone who can
// publish on NATS.
const DevClockWarning = "DEV CLOCK ON (AUTH_DEV_CLOCK=1): time can be moved forward by a request on the advance subject; for dev and test deployments only, never production"

func warnDevClock(cfg config.Config, log *slog.Logger, role string) {
	log.Warn(DevClockWarning, "subject", contract.Subjects(cfg.Prefix).DevClockAdvance(), "role", role,
		"max_advance", clock.MaxAdvance.String(), "max_offset", clock.MaxOffset.String(), "kept_in", DevClockBucket)
}

// FollowClock returns the clock a following component (projector,
// notifier) decides with: the system clock, or with AUTH_DEV_CLOCK=1 a dev
// clock that follows the kept offset, announced by DevClockWarning. stop
// ends the following.
func FollowClock(cfg config.Config, n *NATS, log *slog.Logger) (clk clock.Clock, stop func(), err error) {
	if !cfg.DevClock {
		return clock.System{}, func() {}, nil
	}
	dev := &clock.Dev{}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stop, err = FollowDevClock(ctx, n.JS, cfg.Prefix, cfg.StreamReplicas, dev, log)
	if err != nil {
		return nil, nil, err
	}
	warnDevClock(cfg, log, "follows")
	return dev, stop, nil
}
