package app

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/clock"
)

// FollowDevClock moves a component's dev clock with every
// <prefix>.dev.clock.advance request. The commands service answers those
// requests; other components (projector, notifier) only listen, so one
// request moves the clock of every running component. Requests go through
// clock.ApplyAdvance, as the commands service's do, so a request the
// service refuses moves no clock.
func FollowDevClock(nc *nats.Conn, prefix string, c *clock.Dev, log *slog.Logger) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(prefix+".dev.clock.advance", func(m *nats.Msg) {
		now, err := c.ApplyAdvance(m.Data)
		if err != nil {
			var ae *clock.AdvanceError
			if errors.As(err, &ae) {
				log.Warn("dev clock advance refused", "field", ae.Field, "reason", ae.Detail, "now", now)
			} else {
				log.Warn("dev clock advance refused", "err", err, "now", now)
			}
			return
		}
		log.Warn("dev clock advanced", "now", now, "offset", c.Offset().String())
	})
	if err != nil {
		return nil, fmt.Errorf("follow dev clock: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("follow dev clock: %w", err)
	}
	return sub, nil
}
