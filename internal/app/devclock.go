package app

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
)

// FollowDevClock moves a component's dev clock with every
// <prefix>.dev.clock.advance request. The commands service answers those
// requests; other components (projector, notifier) only listen, so one
// request moves the clock of every running component. Requests go through
// clock.ApplyAdvance, as the commands service's do, so a request the
// service refuses moves no clock.
func FollowDevClock(nc *nats.Conn, prefix string, c *clock.Dev, log *slog.Logger) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(contract.Subjects(prefix).DevClockAdvance(), func(m *nats.Msg) {
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

// DevClockWarning is the line every component logs at start when it runs on
// the dev clock: its time decisions can then be moved by anyone who can
// publish on NATS.
const DevClockWarning = "DEV CLOCK ON (AUTH_DEV_CLOCK=1): time can be moved forward by a request on the advance subject; for dev and test deployments only, never production"

func warnDevClock(cfg config.Config, log *slog.Logger, role string) {
	log.Warn(DevClockWarning, "subject", contract.Subjects(cfg.Prefix).DevClockAdvance(), "role", role,
		"max_advance", clock.MaxAdvance.String(), "max_offset", clock.MaxOffset.String())
}

// FollowClock returns the clock a following component (projector,
// notifier) decides with: the system clock, or with AUTH_DEV_CLOCK=1 a dev
// clock that follows <prefix>.dev.clock.advance, announced by
// DevClockWarning. stop ends the following.
func FollowClock(cfg config.Config, n *NATS, log *slog.Logger) (clk clock.Clock, stop func(), err error) {
	if !cfg.DevClock {
		return clock.System{}, func() {}, nil
	}
	dev := &clock.Dev{}
	sub, err := FollowDevClock(n.Conn, cfg.Prefix, dev, log)
	if err != nil {
		return nil, nil, err
	}
	warnDevClock(cfg, log, "follows")
	return dev, func() { _ = sub.Unsubscribe() }, nil
}
