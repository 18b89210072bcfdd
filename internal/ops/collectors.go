package ops

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// natsCollector reads its connections' state at each scrape: nats.go
// counts the reconnects itself (Conn.Stats), so nothing is hooked into the
// connections' options.
type natsCollector struct {
	conns     []*nats.Conn
	names     []string
	reconnect *prometheus.Desc
	connected *prometheus.Desc
}

func newNATSCollector(conns []*nats.Conn) *natsCollector {
	c := &natsCollector{
		reconnect: prometheus.NewDesc("auth_nats_reconnects_total",
			"Times the NATS connection was re-established after a loss, by connection name.", []string{"conn"}, nil),
		connected: prometheus.NewDesc("auth_nats_connected",
			"1 while the NATS connection is connected, else 0, by connection name.", []string{"conn"}, nil),
	}
	seen := map[string]int{}
	for _, nc := range conns {
		if nc == nil {
			continue
		}
		// The names are the components' own (natsutil.ClientOptions): a
		// fixed set. Two connections of one name are told apart.
		name := nc.Opts.Name
		if name == "" {
			name = "unnamed"
		}
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s-%d", name, seen[name])
		}
		c.conns = append(c.conns, nc)
		c.names = append(c.names, name)
	}
	return c
}

func (c *natsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reconnect
	ch <- c.connected
}

func (c *natsCollector) Collect(ch chan<- prometheus.Metric) {
	for i, nc := range c.conns {
		connected := 0.0
		if nc.IsConnected() {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(c.reconnect, prometheus.CounterValue, float64(nc.Stats().Reconnects), c.names[i])
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, connected, c.names[i])
	}
}

// Descriptions of the consumers' lag.
var (
	lagEventsDesc = prometheus.NewDesc("auth_consumer_lag_events",
		"Events of the stream the consumer has not handled yet (projector: after its checkpoint; notifier: not yet delivered to it).",
		[]string{"consumer"}, nil)
	lagSecondsDesc = prometheus.NewDesc("auth_consumer_lag_seconds",
		"Age of the oldest event the consumer has not handled yet; 0 when caught up.", []string{"consumer"}, nil)
)

// lagCollector reads each consumer's lag at each scrape (a stream info and
// a message get; the projector's checkpoint from Postgres), through the
// answer /readyz shares (CacheFor). A consumer whose lag cannot be read
// within PingTimeout is left out of that scrape: /readyz says why.
type lagCollector struct {
	consumers []Consumer
	lags      []*shared[lagRead] // by consumer
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagEventsDesc
	ch <- lagSecondsDesc
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for i, cons := range c.consumers {
		r, err := c.lags[i].get(context.Background())
		if err != nil || r.err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(lagEventsDesc, prometheus.GaugeValue, float64(r.lag.Events), cons.Name)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, r.lag.Seconds, cons.Name)
	}
}

// StreamCheck is a Config.Stream: a stream info request on each named
// stream (the events streams, contract.Layout.Streams: one per partition),
// failing at the first that does not answer.
func StreamCheck(js jetstream.JetStream, streams ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, name := range streams {
			if _, err := js.Stream(ctx, name); err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
		}
		return nil
	}
}
