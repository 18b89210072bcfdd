package ops

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// describedNames records the names of the metrics registered on it, from
// their descriptions: a vector shows in a Gather only once it has counted
// something, its description always.
type describedNames map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (n describedNames) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			n[m[1]] = true
		}
	}
	return nil
}

func (n describedNames) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = n.Register(c)
	}
}

func (n describedNames) Unregister(prometheus.Collector) bool { return false }

// everyMetric is the name of every metric some component serves.
func everyMetric() describedNames {
	n := describedNames{}
	n.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newNATSCollector([]*nats.Conn{nil}), &lagCollector{consumers: []Consumer{{Name: "x",
			Lag: func(context.Context) (Lag, error) { return Lag{}, nil }}}})
	NewCommandMetrics(n)
	NewProjectorMetrics(n)
	NewNotifierMetrics(n)
	NewWebMetrics(n)
	return n
}

// The sample Grafana dashboard queries only metrics that exist.
func TestTheDashboardQueriesServedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "auth-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	if len(exprs) < 20 {
		t.Fatalf("%d queries found in the dashboard; the walk is broken", len(exprs))
	}
	served := everyMetric()
	name := regexp.MustCompile(`\b(?:auth|go|process)_[a-z0-9_]+`)
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, m := range name.FindAllString(e, -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(m, suffix); ok && served[s] {
					base = s
				}
			}
			if !served[base] {
				t.Errorf("the dashboard queries %s, which no component serves (in %q)", m, e)
			}
			seen[base] = true
		}
	}
	// And it shows every metric of ours.
	for n := range served {
		if strings.HasPrefix(n, "auth_") && !seen[n] {
			t.Errorf("the dashboard does not show %s", n)
		}
	}
}

// docs/operations.md lists every metric of ours, and only those: a table
// row per metric (other auth_ names in the page, such as the compose
// secret auth_secret_key, are not rows).
func TestTheOperationsDocListsEveryMetric(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	served := everyMetric()
	var ours []string
	for n := range served {
		if strings.HasPrefix(n, "auth_") {
			ours = append(ours, n)
			if !strings.Contains(doc, "| `"+n+"` |") {
				t.Errorf("docs/operations.md has no row for %s", n)
			}
		}
	}
	if len(ours) < 20 {
		t.Fatalf("only %d metrics of ours: %v", len(ours), ours)
	}
	for _, m := range regexp.MustCompile("\\| `(auth_[a-z0-9_]+)` \\|").FindAllStringSubmatch(doc, -1) {
		if !served[m[1]] {
			t.Errorf("docs/operations.md names %s, which no component serves", m[1])
		}
	}
}
