package ops

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CommandMetrics are the commands service's: requests by subject and
// outcome, and their duration by subject. The labels are the command's
// subject (a fixed set) and its outcome (a reply status or an error code,
// a fixed set): never a NIR, an email or an account id.
type CommandMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewCommandMetrics registers the commands' metrics on reg.
func NewCommandMetrics(reg prometheus.Registerer) *CommandMetrics {
	m := &CommandMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_commands_total",
			Help: "Commands handled, by subject and outcome (reply status or error code).",
		}, []string{"subject", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auth_command_duration_seconds",
			Help:    "Time to decide a command (before any response floor), by subject.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"subject"}),
	}
	reg.MustRegister(m.total, m.duration)
	return m
}

// Observe counts one command; it is commands.Config.Observe.
func (m *CommandMetrics) Observe(subject, outcome string, d time.Duration) {
	if outcome == "" {
		outcome = "unknown"
	}
	m.total.WithLabelValues(subject, outcome).Inc()
	m.duration.WithLabelValues(subject).Observe(d.Seconds())
}
