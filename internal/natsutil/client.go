package natsutil

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// The reconnect settings of every component's connection (ClientOptions).
const (
	// ReconnectWait is the pause between two attempts on the same server,
	// and ReconnectJitter the most added at random to it: a retry every
	// 50 to 100 ms. nats.go's 2 s default left the commands service
	// unsubscribed for up to 2 s after a restart of a server that was back
	// in under 0.1 s, and the front-ends, which had reconnected first, got
	// "no responders" meanwhile. An attempt on a server that is down costs
	// a refused TCP connection, so a short wait costs nothing; the jitter
	// keeps a fleet of clients from all knocking in the same millisecond.
	ReconnectWait   = 50 * time.Millisecond
	ReconnectJitter = 50 * time.Millisecond
	// ReconnectBufSize bounds what a disconnected connection keeps to send
	// once reconnected (appends, replies, front-ends' requests). It is
	// sized for the gaps reconnecting now leaves: 4 MiB is about 4,000
	// messages of 1 KiB (an append with its headers is under 1 KiB, a
	// request or a reply a few hundred bytes), so it holds a 100 ms gap at
	// 40,000 messages/s, twice the commands service's fastest measured
	// command rate (docs/bench.md). Past it a publish fails at once with
	// nats.ErrReconnectBufExceeded, which the callers report as
	// "unavailable", rather than queue requests whose senders will have
	// given up (a front-end waits a few seconds, then retries with the same
	// request id) and the memory they hold.
	ReconnectBufSize = 4 << 20
)

// ClientOptions are the options of every component's NATS connection (the
// commands service, the projector, the notifier, the web front-end, authctl
// and authctl dev): its name, reconnects for ever every 50 to 100 ms, the
// buffer above, and a log line when the connection is lost and when it is
// back. Subscriptions, the micro service's endpoints included, are sent
// again by nats.go on reconnect, before the buffered messages, so the
// service answers as soon as its connection is back. The server's
// asynchronous errors, a permission refused above all (deploy/nats/users.conf),
// are logged as warnings: without a handler nats.go drops them, and a
// refused publish or subscription would only show as requests that time
// out. Add Auth.Options for the credentials, TLS and inbox prefix.
func ClientOptions(name string, log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.ReconnectJitter(ReconnectJitter, ReconnectJitter),
		nats.ReconnectBufSize(ReconnectBufSize),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own close or drain
				log.Warn("nats disconnected", "conn", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "conn", name, "url", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"conn", name, "err", err}
			if sub != nil {
				attrs = append(attrs, "subscription", sub.Subject)
			}
			log.Warn("nats error", attrs...)
		}),
	}
}
