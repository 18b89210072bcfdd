package projector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// BenchmarkReplay replays a stream of 1,000,000 events (PROJECTOR_BENCH_EVENTS
// to change it) into fresh read models with one projector, and reports its
// rate beside the rate of a raw COPY of the rows it produced, into empty
// copies of the same tables, on the same database.
//
//	go test -run '^$' -bench Replay -benchtime 1x ./internal/projector/
func BenchmarkReplay(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("PROJECTOR_BENCH_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	batch := DefaultBatchSize
	if v := os.Getenv("PROJECTOR_BENCH_BATCH"); v != "" {
		batch, _ = strconv.Atoi(v)
	}
	// As cmd/projector does when GOGC is not set.
	defer debug.SetGCPercent(debug.SetGCPercent(ProjectorGCPercent))
	bus := newBus(b)
	t0 := time.Now()
	publishSim(b, bus, n, 20_000)
	b.Logf("published %d events in %s", n, time.Since(t0).Round(time.Millisecond))

	for i := 0; i < b.N; i++ {
		url := newDB(b)
		checkpoint(b, url)
		b.StartTimer()
		start := time.Now()
		var inTx atomicDuration
		var phases Timings // AfterCommit runs on the writer goroutine, read after stop
		r := startReplica(b, newJS(b, bus.srv), url, "bench", func(c *Config) {
			c.AfterCommit = func(c Committed) { inTx.Add(c.Took); phases.Add(c.Timings) }
			c.BatchSize = batch
			c.beforeCommit = nil
			c.IdleWait = 50 * time.Millisecond
		})
		waitCaughtUp(b, url, uint64(n), 30*time.Minute)
		took := time.Since(start)
		b.StopTimer()
		r.stop()
		eps := float64(n) / took.Seconds()

		logTableStats(b, url)
		// The median of three raw COPYs, each into fresh tables after a
		// checkpoint, as the projector ran.
		var rates []float64
		var rows int64
		var copyTook time.Duration
		for range 3 {
			checkpoint(b, url)
			var took time.Duration
			rows, took = rawCopy(b, url)
			rates = append(rates, float64(rows)/took.Seconds())
			copyTook += took / 3
		}
		slices.Sort(rates)
		copyRate := rates[1]
		b.ReportMetric(eps, "events/s")
		b.ReportMetric(copyRate, "copy_rows/s")
		b.ReportMetric(eps/copyRate, "x_copy")
		b.Logf("time in batch transactions: %s (%+v)", inTx.Load().Round(time.Millisecond), phases)
		b.Logf("projector: %d events in %s = %.0f events/s (batch %d); raw COPY of its %d rows (median of 3, mean %s): %.0f rows/s %v; ratio %.2f",
			n, took.Round(time.Millisecond), eps, batch, rows, copyTook.Round(time.Millisecond), copyRate, roundAll(rates), eps/copyRate)
	}
}

// checkpoint flushes the dirty pages, so a timed phase does not pay for the
// previous one's writes.
func checkpoint(tb testing.TB, url string) {
	tb.Helper()
	if _, err := connect(tb, url).Exec(context.Background(), "CHECKPOINT"); err != nil {
		tb.Logf("checkpoint (needs a superuser; timings will be noisier): %v", err)
	}
}

func roundAll(fs []float64) []float64 {
	out := make([]float64, len(fs))
	for i, f := range fs {
		out[i] = float64(int64(f))
	}
	return out
}

// publishSim publishes n simulated events over the given number of
// accounts, as fast as JetStream takes them.
func publishSim(tb testing.TB, bus *bus, n, accounts int) {
	tb.Helper()
	nc, err := nats.Connect(bus.srv.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(8192))
	if err != nil {
		tb.Fatal(err)
	}
	s := newSim(99)
	accs := s.Accounts(accounts)
	for i := 0; i < n; i++ {
		var a *simAccount
		if i < accounts {
			a = accs[i] // every account registered first
		} else {
			a = accs[s.Rng.IntN(len(accs))]
		}
		msg, err := eventstore.EventMsg(contract.Subjects(DefaultPrefix).Events(a.ID), s.Next(a))
		if err != nil {
			tb.Fatal(err)
		}
		for {
			_, err := js.PublishMsgAsync(msg)
			if err == nil {
				break
			}
			if !errors.Is(err, nats.ErrTooManyStalledMsgs) {
				tb.Fatal(err)
			}
			// A loaded server: wait for the acknowledgements in flight.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				tb.Fatal("publish: no acknowledgement for a minute")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		tb.Fatal("publish did not complete")
	}
}

// rawCopy copies every row of the read models out (text COPY, not timed)
// and into empty copies of the tables with the same indexes (timed): the
// fastest way Postgres can take those rows.
func rawCopy(tb testing.TB, url string) (rows int64, took time.Duration) {
	tb.Helper()
	ctx := context.Background()
	conn := connect(tb, url)
	tables := []string{"accounts", "login_attempts", "trusted_devices", "biometric_devices"}
	data := map[string]*bytes.Buffer{}
	for _, tbl := range tables {
		var buf bytes.Buffer
		if _, err := conn.PgConn().CopyTo(ctx, &buf, "COPY auth."+tbl+" TO STDOUT"); err != nil {
			tb.Fatal(err)
		}
		data[tbl] = &buf
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE auth.copy_%s (LIKE auth.%s INCLUDING ALL)", tbl, tbl)); err != nil {
			tb.Fatal(err)
		}
	}
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	for _, tbl := range tables {
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data[tbl].Bytes()), "COPY auth.copy_"+tbl+" FROM STDIN")
		if err != nil {
			tb.Fatal(err)
		}
		rows += tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	took = time.Since(start)
	for _, tbl := range tables {
		_, _ = conn.Exec(ctx, "DROP TABLE auth.copy_"+tbl)
	}
	return rows, took
}

type atomicDuration struct{ atomic.Int64 }

func (d *atomicDuration) Add(x time.Duration) { d.Int64.Add(int64(x)) }
func (d *atomicDuration) Load() time.Duration { return time.Duration(d.Int64.Load()) }

// logTableStats tells how the tables fared: sizes, and how many account
// updates were HOT (no index write, no bloat).
func logTableStats(tb testing.TB, url string) {
	conn := connect(tb, url)
	rows, err := conn.Query(context.Background(), `SELECT relname, pg_size_pretty(pg_total_relation_size(relid)),
		n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'auth' ORDER BY relname`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, size string
		var ins, upd, hot, dead int64
		if err := rows.Scan(&name, &size, &ins, &upd, &hot, &dead); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("%-22s %8s  inserts %8d  updates %8d (HOT %8d)  dead %8d", name, size, ins, upd, hot, dead)
	}
}
