package histrun

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// envInt reads a size from the environment (make check-history sets them).
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestHistory runs a randomized history and checks it. With no
// HISTCHECK_* variable it is the short run of `make test` (a few seconds
// under -race); `make check-history` sets a longer one.
func TestHistory(t *testing.T) {
	cfg := Config{
		Clients:     envInt(t, "HISTCHECK_CLIENTS", 8),
		Accounts:    envInt(t, "HISTCHECK_ACCOUNTS", 40),
		OpsPerRound: envInt(t, "HISTCHECK_OPS_PER_ROUND", 6),
		Duration:    time.Duration(envInt(t, "HISTCHECK_SECONDS", 10)) * time.Second,
		Instances:   envInt(t, "HISTCHECK_INSTANCES", 2),
		Seed:        uint64(envInt(t, "HISTCHECK_SEED", 0)),
		Partitions:  envInt(t, "HISTCHECK_PARTITIONS", 1),
	}
	res := Execute(t, cfg)
	t.Logf("%s", res)
	t.Logf("outcomes: %v", outcomes(res))
	t.Logf("latencies: %v", latencies(res))
	const maxShown = 30
	for i, v := range res.Report.Violations {
		if i == maxShown {
			t.Errorf("... and %d more", len(res.Report.Violations)-maxShown)
			break
		}
		t.Errorf("violation: %s", v)
	}
	if res.Report.Events == 0 || res.Report.Ops == 0 {
		t.Fatalf("an empty run: %s", res)
	}
}

func outcomes(res Result) map[string]int {
	out := map[string]int{}
	for _, o := range res.Ops {
		out[o.Command+" "+o.Outcome()]++
	}
	return out
}

func latencies(res Result) map[string]string {
	type agg struct {
		n        int
		sum, max time.Duration
	}
	m := map[string]*agg{}
	for _, o := range res.Ops {
		a := m[o.Command]
		if a == nil {
			a = &agg{}
			m[o.Command] = a
		}
		d := o.End.Sub(o.Start)
		a.n++
		a.sum += d
		a.max = max(a.max, d)
	}
	out := map[string]string{}
	for k, a := range m {
		out[k] = fmt.Sprintf("n=%d mean=%s max=%s", a.n, (a.sum / time.Duration(a.n)).Round(time.Microsecond), a.max.Round(time.Microsecond))
	}
	return out
}
