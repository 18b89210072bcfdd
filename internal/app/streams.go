package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamPatience is how long a consumer (the notifier) waits at start for
// the streams the commands service creates: long enough for a deployment
// that starts every component at once, short enough that a notifier run
// against the wrong NATS says so.
const streamPatience = time.Minute

// AwaitStreams waits until every named stream exists, up to patience, and
// reads nothing else. The commands service creates the streams at its
// start (eventstore.OpenJetStream, notifier.EnsureDLQStream); the
// projector's and the notifier's NATS users may only read their info
// (deploy/nats/users.conf), so a consumer started first waits, and says
// why, instead of creating them. Any error but "not found" (a refused
// permission, NATS down) ends the wait at once.
func AwaitStreams(ctx context.Context, js jetstream.JetStream, patience time.Duration, log *slog.Logger, names ...string) error {
	deadline := time.Now().Add(patience)
	wait := 100 * time.Millisecond
	for _, name := range names {
		warned := false
		for {
			_, err := js.Stream(ctx, name)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("stream %s not found after %s: the commands service creates it at its start; start it (with the same AUTH_SUBJECT_PREFIX and NATS) first", name, patience)
			}
			if !warned {
				log.Warn("waiting for a stream the commands service creates at its start", "stream", name, "patience", patience.String())
				warned = true
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait): // polling the server, not waiting for time to pass
			}
			wait = min(2*wait, 2*time.Second)
		}
	}
	return nil
}
