package projector

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/projections"
)

// A rebuild replaces damaged read models while the live projector runs and
// events keep coming; readers see the old model or the new one, complete,
// and never step back in time.
func TestRebuildSwapsInAtomically(t *testing.T) {
	ctx := context.Background()
	b := newBus(t)
	s := newSim(50)
	accs := s.Accounts(60)
	b.produce(t, s, accs, 3000)
	url := newDB(t)
	live := startReplica(t, b.js, url, "live", nil)
	waitCaughtUp(t, url, 3000, 20*time.Second)

	// Damage the live model: a row the projector never wrote, rows lost.
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, `INSERT INTO auth.login_attempts (event_id, seq, account_id, at, step, outcome)
		VALUES ('tampered', -1, 'x', now(), 'x', 'x'); DELETE FROM auth.login_attempts WHERE seq % 7 = 0`); err != nil {
		t.Fatal(err)
	}

	// Readers: one statement, one snapshot.
	type seen struct {
		cp       uint64
		attempts int
		tampered bool
	}
	var (
		views    [2][]seen // per reader: one reader's views are in time order
		lastView [2]atomic.Pointer[seen]
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for i := range views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := connect(t, url)
			for !stop.Load() {
				var v seen
				err := rc.QueryRow(ctx, `SELECT last_seq,
					(SELECT count(*) FROM auth.login_attempts WHERE event_id <> 'tampered'),
					EXISTS (SELECT 1 FROM auth.login_attempts WHERE event_id = 'tampered')
					FROM auth.projector_checkpoint`).Scan(&v.cp, &v.attempts, &v.tampered)
				if err != nil {
					if strings.Contains(err.Error(), "SQLSTATE 40P01") {
						// The swap locks every live table in one
						// statement while this reader holds one and asks
						// for another: Postgres ends one side of the
						// deadlock. A reader retries, as a client of the
						// read models would (the swap does too).
						continue
					}
					if !strings.Contains(err.Error(), "does not exist") {
						t.Errorf("reader: %v", err)
						return
					}
					t.Errorf("reader found no table (the swap is not atomic): %v", err)
					return
				}
				views[i] = append(views[i], v)
				lastView[i].Store(&v)
				// Pacing, not synchronisation: a reader every 2 ms
				// leaves the rebuild and the live projector room.
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	// Writers go on during the rebuild.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			b.produce(t, s, accs, 100)
			// Pacing: the writes spread over the rebuild.
			time.Sleep(20 * time.Millisecond)
		}
	}()
	res, err := Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: newJS(t, b.srv), BatchSize: 500, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	last := b.lastSeq(t)
	waitCaughtUp(t, url, last, 20*time.Second)
	waitFor(t, "every reader to see the new model at the end of the stream", 10*time.Second, func() bool {
		for i := range lastView {
			if v := lastView[i].Load(); v == nil || v.tampered || v.cp < last {
				return false
			}
		}
		return true
	})
	stop.Store(true)
	wg.Wait()
	live.stop()
	if res.Events < 3000 || res.Checkpoint < 3000 {
		t.Errorf("rebuild replayed %d events to %d", res.Events, res.Checkpoint)
	}

	// The new model is the stream's, exactly.
	if got, want := dumpTables(t, url), b.freshReplay(t); got != want {
		t.Fatalf("after the rebuild: %s", diff(got, want))
	}
	// What every reader saw was a whole model.
	attemptsUpTo := map[uint64]int{}
	n := 0
	for _, r := range b.history(t) {
		for _, st := range r.stmts {
			if _, ok := st.(projections.InsertAttempt); ok {
				n++
			}
		}
		attemptsUpTo[r.seq] = n
	}
	sawOld := false
	for _, vs := range views {
		var prev uint64
		sawNew := false
		for _, v := range vs {
			if v.cp < prev {
				t.Fatalf("a reader stepped back from checkpoint %d to %d", prev, v.cp)
			}
			prev = v.cp
			if v.tampered {
				sawOld = true
				if sawNew {
					t.Fatal("a reader saw the old model after the new one")
				}
				continue
			}
			sawNew = true
			if v.attempts != attemptsUpTo[v.cp] {
				t.Fatalf("a reader saw %d attempts at checkpoint %d, want %d: a half-built model", v.attempts, v.cp, attemptsUpTo[v.cp])
			}
		}
	}
	sawNew := len(views[0]) > 0 && !views[0][len(views[0])-1].tampered
	if !sawOld || !sawNew {
		t.Errorf("readers saw old %v, new %v: want both", sawOld, sawNew)
	}
	for _, schema := range []string{shadowSchema, retiredSchema} {
		if count(t, conn, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) != 0 {
			t.Errorf("schema %s left behind", schema)
		}
	}
	cur, latest, err := MigrationVersion(ctx, url)
	if err != nil || cur != latest {
		t.Errorf("migrations after the swap: %d of %d, %v", cur, latest, err)
	}
}

func TestRebuildOfAFreshDatabaseAndAnEmptyStream(t *testing.T) {
	ctx := context.Background()
	b := newBus(t)
	url := pgtestNewDatabase(t) // never migrated: the rebuild makes the schema
	res, err := Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: b.js})
	if err != nil || res.Events != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if cp := checkpointOf(t, url); cp != 0 {
		t.Fatalf("checkpoint %d", cp)
	}
	s := newSim(51)
	b.produce(t, s, s.Accounts(5), 100)
	if res, err = Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: b.js}); err != nil || res.Events != 100 || res.Checkpoint != 100 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	b := newBus(t)
	s := newSim(60)
	accs := s.Accounts(10)
	b.produce(t, s, accs, 200)
	url := newDB(t)
	r := startReplica(t, b.js, url, "status", nil)
	waitCaughtUp(t, url, 200, 20*time.Second)
	st, err := ReadStatus(ctx, StatusConfig{DatabaseURL: url, JS: b.js})
	if err != nil {
		t.Fatal(err)
	}
	if st.Checkpoint != 200 || st.StreamLastSeq != 200 || st.LagEvents != 0 || st.LagSeconds != 0 ||
		!strings.Contains(st.Leader, "authsvc-projector status") || st.SchemaVersion != st.LatestMigration || st.LastEventAt.IsZero() {
		t.Fatalf("caught up: %+v", st)
	}
	r.stop()
	b.produce(t, s, accs, 25)
	// The lag in seconds is the age of event 201, the oldest not applied,
	// by the clock of the status: moved 90 s past it.
	stream, err := b.js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	oldest, err := stream.GetMsg(ctx, 201)
	if err != nil {
		t.Fatal(err)
	}
	st, err = ReadStatus(ctx, StatusConfig{DatabaseURL: url, JS: b.js, Clock: clock.NewFixed(oldest.Time.Add(90 * time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	if st.LagEvents != 25 || st.LagSeconds != 90 || st.Leader != "" {
		t.Fatalf("behind: %+v", st)
	}
}
