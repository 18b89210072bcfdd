package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
)

const eventsTestPartitions = 4

// tableRow is a line of `authctl events`'s table, its SEQ column apart.
var tableRow = regexp.MustCompile(`(?m)^(\S+) +(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d)  ([0-9A-Z<>_-]{26})  (.*)$`)

type shownRow struct {
	seq, rest string
	at        time.Time
	account   string
	partition int
	partSeq   uint64
}

// parseTable reads the table's rows, SEQ "<partition>:<sequence>".
func parseTable(t *testing.T, out string) []shownRow {
	t.Helper()
	var rows []shownRow
	for _, m := range tableRow.FindAllStringSubmatch(out, -1) {
		at, err := time.ParseInLocation("02/01/2006 15:04:05", m[2], time.Local)
		if err != nil {
			t.Fatal(err)
		}
		r := shownRow{seq: m[1], rest: m[2] + "  " + m[3] + "  " + m[4], at: at, account: m[3]}
		p, q, ok := strings.Cut(m[1], ":")
		if ok {
			r.partition, _ = strconv.Atoi(p)
			r.partSeq, _ = strconv.ParseUint(q, 10, 64)
		}
		rows = append(rows, r)
	}
	return rows
}

// checkMerged checks that rows are the whole history of the partitions,
// merged: each row's SEQ names its account's partition, each partition's
// sequences come in their order, and the times never go back.
func checkMerged(t *testing.T, rows []shownRow, total int) {
	t.Helper()
	if len(rows) != total {
		t.Fatalf("%d rows for %d events", len(rows), total)
	}
	next := map[int]uint64{}
	for i, r := range rows {
		if want := contract.Partition(r.account, eventsTestPartitions); r.partition != want || r.partSeq == 0 {
			t.Fatalf("row %d: SEQ %s for account %s of partition %d", i, r.seq, r.account, want)
		}
		if r.partSeq <= next[r.partition] {
			t.Fatalf("row %d: partition %d's sequence %d after %d", i, r.partition, r.partSeq, next[r.partition])
		}
		next[r.partition] = r.partSeq
		if i > 0 && r.at.Before(rows[i-1].at) {
			t.Fatalf("row %d at %v after %v", i, r.at, rows[i-1].at)
		}
	}
}

// With the events in four partitions, `authctl events` finds them on the
// server and merges the partitions' streams by occurred_at: the script's
// history reads as it does from the one stream AUTH_EVENTS (the golden
// file), SEQ giving each event's partition and sequence. Over more
// accounts spread over the partitions the merge stays whole and in order;
// --account (an id or a NIR, looked up in its key's partition's bucket)
// reads its partition only; jsonl gives each envelope as stored; --follow
// follows every partition.
func TestEventsOverFourPartitions(t *testing.T) {
	e := newPartitionedTestEnv(t, eventsTestPartitions)
	idA, idB := scriptHistory(e)
	names := map[string]string{idA: placeholder("ACCOUNT_A"), idB: placeholder("ACCOUNT_B")}
	ctx := ctxTimeout(t, time.Minute)

	res := e.authctl(ctx, nil, "events")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "events.golden"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(golden), "\n\n$ ")
	rest := func(rows []shownRow) []string {
		var out []string
		for _, r := range rows {
			out = append(out, normalizeIDs(r.rest, names))
		}
		return out
	}
	got, want := parseTable(t, res.stdout), parseTable(t, first)
	if !slices.Equal(rest(got), rest(want)) {
		t.Fatalf("four partitions, merged:\n%s\nwant the rows of the one stream:\n%s", res.stdout, first)
	}
	checkMerged(t, got, len(want))

	// More accounts, until they cover three partitions or more, and
	// wrong passwords a minute apart.
	ids := []string{idA, idB}
	covered := func() int {
		ps := map[int]bool{}
		for _, id := range ids {
			ps[contract.Partition(id, eventsTestPartitions)] = true
		}
		return len(ps)
	}
	for i := 1; i <= 4 || covered() < 3; i++ {
		if i > 40 {
			t.Fatal("40 accounts in fewer than three partitions")
		}
		nir := fmt.Sprintf("1800575056%03d", i)
		e.clock.Advance(time.Minute)
		ids = append(ids, e.register(nir, fmt.Sprintf("titulaire%d@exemple.fr", i)))
		e.clock.Advance(time.Minute)
		e.req("login.password", map[string]any{"nir": nir, "password": "faux", "channel": "web"})
		e.req("login.password", map[string]any{"nir": nirA, "password": "faux", "channel": "web"})
	}
	total := int(e.h.StreamCount())
	res = e.authctl(ctx, nil, "events")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	checkMerged(t, parseTable(t, res.stdout), total)

	// jsonl: every envelope as stored, in the same order.
	res = e.authctl(ctx, nil, "events", "-o", "jsonl")
	if res.code != 0 {
		t.Fatalf("jsonl: exit %d\n%s", res.code, res.stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	var envs []events.Envelope
	for sc.Scan() {
		env, err := events.Unmarshal(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", len(envs)+1, err)
		}
		envs = append(envs, env)
	}
	if len(envs) != total {
		t.Fatalf("jsonl: %d lines for %d events", len(envs), total)
	}
	for i := 1; i < len(envs); i++ {
		if envs[i].OccurredAt.Before(envs[i-1].OccurredAt) {
			t.Fatalf("jsonl line %d goes back in time", i+1)
		}
	}

	// One account, by id and by NIR: its history, from its partition.
	for _, account := range []string{idA, nirA} {
		t.Setenv("AUTH_SECRET_KEY", testSecretKey)
		res = e.authctl(ctx, nil, "events", "--account", account)
		rows := parseTable(t, res.stdout)
		if res.code != 0 || len(rows) != len(e.history(idA)) {
			t.Fatalf("--account %s: exit %d, %d rows for %d events\n%s%s", account, res.code, len(rows), len(e.history(idA)), res.stdout, res.stderr)
		}
		for _, r := range rows {
			if r.account != idA || r.partition != contract.Partition(idA, eventsTestPartitions) {
				t.Fatalf("--account %s shows %s", account, r.seq+" "+r.account)
			}
		}
	}

	// --follow: the replay, then what every partition gets.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out, errw syncBuffer
	done := make(chan runResult, 1)
	go func() { done <- e.authctlTo(fctx, nil, &out, &errw, "events", "--follow") }()
	waitRows := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(parseTable(t, out.String())) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d rows, want %d:\n%s%s", len(parseTable(t, out.String())), n, out.String(), errw.String())
			}
			time.Sleep(20 * time.Millisecond) // polling, until the deadline above
		}
	}
	waitRows(total)
	var later []string
	for i := 41; len(later) < 4; i++ {
		e.clock.Advance(time.Minute)
		later = append(later, e.register(fmt.Sprintf("1800575056%03d", i), fmt.Sprintf("titulaire%d@exemple.fr", i)))
	}
	waitRows(total + len(later))
	cancel()
	res = <-done
	if res.code != 0 {
		t.Fatalf("follow: exit %d: %s", res.code, res.stderr)
	}
	rows := parseTable(t, res.stdout)
	if len(rows) != total+len(later) {
		t.Fatalf("%d rows, want %d", len(rows), total+len(later))
	}
	// The replay is merged by time; what follows comes as each partition's
	// consumer delivers it (each account's order holds: one partition),
	// so across partitions in arrival order, not by time.
	checkMerged(t, rows[:total], total)
	followed := map[string]bool{}
	for _, r := range rows[total:] {
		followed[r.account] = true
	}
	for _, id := range later {
		if !followed[id] {
			t.Errorf("followed rows %v lack %s", rows[total:], id)
		}
	}
	waitNoConsumers(t, e)
}
