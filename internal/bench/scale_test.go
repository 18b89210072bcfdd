package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ameli-auth/authsvc/internal/pgtest"
)

// asNATSServer makes the test binary a nats-server (the scale run starts
// its server as a process of its own: this binary, with the same pinned
// server, needs no build).
const asNATSServer = "AUTHBENCH_TEST_AS_NATS_SERVER"

func TestMain(m *testing.M) {
	if IsReplica() {
		// The projector phase runs its replica as this binary again.
		os.Exit(ReplicaMain())
	}
	if os.Getenv(asNATSServer) == "1" {
		fs := flag.NewFlagSet("nats-server", flag.ExitOnError)
		opts, err := server.ConfigureOptions(fs, os.Args[1:], server.PrintServerAndExit, fs.Usage, server.PrintTLSHelpAndDie)
		if err != nil {
			server.PrintAndDie(err.Error())
		}
		s, err := server.NewServer(opts)
		if err != nil {
			server.PrintAndDie(err.Error())
		}
		s.ConfigureLogger()
		if err := server.Run(s); err != nil {
			server.PrintAndDie(err.Error())
		}
		s.WaitForShutdown()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestScaleMeasuresEveryFigure runs the scale benchmark, tiny (2,000
// accounts against 500), on a nats-server process and the test Postgres,
// and checks that every figure was measured: the store grew with the
// accounts, both restarts came back, the logins were timed at both sizes
// and the projector caught up with every event; and that the report
// prints them with the JSON last.
func TestScaleMeasuresEveryFigure(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	profiles := t.TempDir()
	res, err := Scale(ctx, ScaleOptions{Accounts: 2000, Baseline: 500, Logins: 50, NATSServer: os.Args[0],
		ServerEnv: []string{asNATSServer + "=1"}, Dir: t.TempDir(), DatabaseURL: db, Progress: &progress,
		DuplicateWindow: time.Second, SettleIdle: 1500 * time.Millisecond, ProfileDir: profiles})
	if err != nil {
		t.Fatalf("scale: %v\n%s", err, progress.String())
	}
	b, n := res.Baseline, res.AtN
	if b.Accounts != 500 || n.Accounts != 2000 {
		t.Fatalf("points at %d and %d accounts, want 500 and 2000", b.Accounts, n.Accounts)
	}
	if res.ImportPerS <= 0 || n.DiskBytes <= b.DiskBytes || res.DiskPerAccount <= 0 {
		t.Errorf("import %.0f/s, disk %d -> %d bytes: want a rate and a growing store", res.ImportPerS, b.DiskBytes, n.DiskBytes)
	}
	for _, p := range []ScalePoint{b, n} {
		if p.ServerRSSMB <= 0 || p.RestartRSSMB <= 0 || p.CleanStartS <= 0 || p.KillStartS <= 0 || p.KillWritesStartS <= 0 || p.KillWritesRSSMB <= 0 ||
			p.StoppedDiskBytes <= 0 || p.LoginP50Ms <= 0 || p.LoginP99Ms < p.LoginP50Ms {
			t.Errorf("point %+v: a figure is missing", p)
		}
	}
	// The settled heaps: read at both sizes, the profiles at N written,
	// and the stores listed with one NIR index key per account and no
	// snapshot for an account that has only its registration.
	for _, p := range []ScalePoint{b, n} {
		if p.SettledHeapMB <= 0 || p.RestartSettledHeapMB <= 0 || p.SettleS <= 0 {
			t.Errorf("point at %d: settled heaps %.1f and %.1f MB after %.1f s, want both", p.Accounts, p.SettledHeapMB, p.RestartSettledHeapMB, p.SettleS)
		}
	}
	for _, f := range []string{n.HeapProfile, n.RestartHeapProfile, n.ImportHeapProfile, n.LoginsHeapProfile} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 || !strings.HasPrefix(f, profiles) {
			t.Errorf("heap profile %q: %v", f, err)
		}
	}
	if res.DuplicateWindowS != 1 {
		t.Errorf("duplicate window %.1f s, want the 1 s asked for", res.DuplicateWindowS)
	}
	stores := map[string]StoreState{}
	for _, st := range n.Stores {
		stores[st.Name] = st
	}
	if ev, idx := stores["AUTH_EVENTS"], stores["KV_AUTH_NIR_INDEX"]; ev.Subjects != 2000 || idx.Subjects != 2000 || idx.Msgs != 2000 || ev.DiskBytes <= 0 || idx.DiskBytes <= 0 {
		t.Errorf("stores %+v: want 2,000 accounts' subjects in the events stream and the NIR index", n.Stores)
	}
	if sn := stores["KV_AUTH_SNAPSHOTS"]; sn.Name == "" || sn.Msgs != 0 {
		t.Errorf("snapshots %+v: want the bucket, empty (no retention: a snapshot every 25 events)", sn)
	}
	if res.LoginP99Ratio <= 0 {
		t.Errorf("p99 ratio %v", res.LoginP99Ratio)
	}
	// 2,000 registrations and 100 logins (one attempt each, at least).
	if res.ProjectorEvents < 2100 || res.ProjectorPerS <= 0 {
		t.Errorf("projector caught up with %d events at %.0f/s, want at least 2,100", res.ProjectorEvents, res.ProjectorPerS)
	}
	var out bytes.Buffer
	if err := WriteScaleReport(&out, res, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var back ScaleResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &back); err != nil || back.AtN.Accounts != 2000 {
		t.Errorf("last line %q: not the result's JSON (%v)", lines[len(lines)-1], err)
	}
	for _, want := range []string{"import rate", "cold login p99", "start after kill -9", "following the import", "after the clean stop", "settled live heap", "projector catch-up", "compression s2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestScaleUncompressed runs the scale benchmark tiny with Uncompressed
// (authctl bench --scale --uncompressed) and checks that the server's
// stream really has no compression, as the report says: the comparison
// with S2 in docs/scale.md rests on it.
func TestScaleUncompressed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	res, err := Scale(ctx, ScaleOptions{Accounts: 300, Baseline: 100, Logins: 10, NATSServer: os.Args[0],
		ServerEnv: []string{asNATSServer + "=1"}, Dir: t.TempDir(), SkipProjector: true, Uncompressed: true, SettleIdle: -1, Progress: &progress})
	if err != nil {
		t.Fatalf("scale: %v\n%s", err, progress.String())
	}
	if res.Compression != "none" {
		t.Errorf("compression %q, want none", res.Compression)
	}
	var out bytes.Buffer
	if err := WriteScaleReport(&out, res, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "compression none") {
		t.Errorf("report does not say the stream is uncompressed:\n%s", out.String())
	}
}

// procCPUSeconds reads this process's CPU time, and it grows with work.
func TestProcCPUSeconds(t *testing.T) {
	before := procCPUSeconds(os.Getpid())
	if before <= 0 {
		t.Fatalf("CPU time %v, want the test binary's own, above 0", before)
	}
	x, end := 0, time.Now().Add(10*time.Second)
	for procCPUSeconds(os.Getpid()) < before+0.05 {
		if time.Now().After(end) {
			t.Fatalf("CPU time still %v after 10 s of work", procCPUSeconds(os.Getpid()))
		}
		for i := range 1_000_000 {
			x += i
		}
	}
	if procCPUSeconds(-1) != 0 {
		t.Error("a process that does not exist: want 0")
	}
	_ = x
}
