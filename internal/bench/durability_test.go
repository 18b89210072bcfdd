package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var durabilityTime = flag.Duration("durability-time", 5*time.Second, "BenchmarkDurability: each setup's timed window")

// The durability comparison runs, tiny, on the 3-node cluster (one server
// with sync_interval always is the same code with one option): it appends
// and reports its figures.
func TestDurabilityComparesEverySetup(t *testing.T) {
	figs, err := Durability(context.Background(), DurabilityOptions{Dir: t.TempDir(), Writers: 8,
		Warmup: 50 * time.Millisecond, Time: 200 * time.Millisecond,
		Setups: []DurabilitySetup{DurabilitySetups[2]}, Progress: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 {
		t.Fatalf("%d figures, want 1", len(figs))
	}
	for _, f := range figs {
		if f.Count == 0 || f.PerS <= 0 || f.P99 <= 0 || f.P99 < f.P50 {
			t.Errorf("%s: %+v", f.Setup.Name, f.AppendFigures)
		}
	}
}

// BenchmarkDurability measures the append phase's load on every setup of
// DurabilitySetups in one run and reports each one's throughput and p99
// and its ratio to the default R1; docs/durability.md quotes it:
//
//	go test -run '^$' -bench Durability -benchtime 1x ./internal/bench/
//
// -durability-time (default 5s) sets each timed window. Each b.Loop
// iteration runs every setup once: use -benchtime 1x.
func BenchmarkDurability(b *testing.B) {
	for b.Loop() {
		// Progress on stderr: go test keeps only the first lines of a
		// benchmark's log, and the table must be among them.
		figs, err := Durability(context.Background(), DurabilityOptions{Dir: b.TempDir(), Time: *durabilityTime,
			Progress: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }})
		if err != nil {
			b.Fatal(err)
		}
		base := figs[0]
		var t strings.Builder
		fmt.Fprintf(&t, "\n| setup | appends/s | p50 | p99 | throughput vs R1 default | p99 vs R1 default | conflicts |\n|---|---|---|---|---|---|---|\n")
		for _, f := range figs {
			fmt.Fprintf(&t, "| %s | %.0f | %.2f ms | %.2f ms | %.2f | %.1f | %d |\n", f.Setup.Name, f.PerS,
				millis(f.P50), millis(f.P99), f.PerS/base.PerS, millis(f.P99)/millis(base.P99), f.Conflicts)
			key := strings.NewReplacer(",", "", " ", "_", "(", "", ")", "").Replace(f.Setup.Name)
			b.ReportMetric(f.PerS, key+"_appends/s")
			b.ReportMetric(millis(f.P99), key+"_p99_ms")
		}
		b.Log(t.String())
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
