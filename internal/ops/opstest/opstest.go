// Package opstest reads a component's metrics in tests: one series' value,
// and every label value of a registry (to prove none holds personal data).
package opstest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value is the value of the series of metric name whose labels include
// labels ("key", "value", ...): a counter's or a gauge's value, a
// histogram's count. It is 0 when no such series exists yet (a vector
// shows a series once it has counted something).
func Value(tb testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	tb.Helper()
	if len(labels)%2 != 0 {
		tb.Fatalf("opstest.Value(%s): labels must come in pairs", name)
	}
	families, err := g.Gather()
	if err != nil {
		tb.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			case m.GetUntyped() != nil:
				return m.GetUntyped().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Families is the names of the metric families g has series of.
func Families(tb testing.TB, g prometheus.Gatherer) map[string]bool {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatalf("gather metrics: %v", err)
	}
	out := map[string]bool{}
	for _, f := range families {
		out[f.GetName()] = true
	}
	return out
}

// CheckLabels fails the test for every label value of every series of g
// that contains one of secrets (compared without case, spaces and dots,
// so that a NIR in any of its spellings is found).
func CheckLabels(tb testing.TB, g prometheus.Gatherer, secrets ...string) (labels int) {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels++
				v := squash(l.GetValue())
				for _, s := range secrets {
					if s = squash(s); s != "" && strings.Contains(v, s) {
						tb.Errorf("metric %s: label %s=%q holds %q", f.GetName(), l.GetName(), l.GetValue(), s)
					}
				}
			}
		}
	}
	return labels
}

func squash(s string) string {
	return strings.NewReplacer(" ", "", ".", "").Replace(strings.ToLower(s))
}
