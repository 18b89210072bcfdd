package app

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/clock"
)

// FollowDevClock moves a component's dev clock with every
// <prefix>.dev.clock.advance request. The commands service answers those
// requests; other components (projector, notifier) only listen, so one
// request moves the clock of every running component.
func FollowDevClock(nc *nats.Conn, prefix string, c *clock.Dev) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(prefix+".dev.clock.advance", func(m *nats.Msg) {
		var req struct {
			Seconds int64 `json:"seconds"`
		}
		if json.Unmarshal(m.Data, &req) == nil && req.Seconds > 0 {
			c.Advance(time.Duration(req.Seconds) * time.Second)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("follow dev clock: %w", err)
	}
	return sub, nc.Flush()
}
