package cli

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// authctl partitions migrate: a usage error without --commands-stopped or
// with the same numbers, refused while the service answers, then, with it
// stopped, every account's events in the new layout, in order, and
// `authctl events` finds them there by itself.
func TestPartitionsMigrate(t *testing.T) {
	e := newPartitionedTestEnv(t, 2)
	accA, accB := e.register(nirA, "a@example.fr"), e.register(nirB, "b@example.fr")
	before := map[string][]string{}
	for _, acc := range []string{accA, accB} {
		for _, env := range e.history(acc) {
			before[acc] = append(before[acc], env.ID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"partitions", "migrate", "--from-partitions", "2", "--to-partitions", "3"},
		{"partitions", "migrate", "--from-partitions", "2", "--to-partitions", "2", "--commands-stopped"},
		{"partitions", "migrate", "--from-partitions", "2", "--to-partitions", "3", "--commands-stopped", "--placement", "a;;b"},
	} {
		if r := e.authctl(ctx, nil, args...); r.code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, r.code, r.stderr)
		}
	}
	migrate := []string{"partitions", "migrate", "--from-partitions", "2", "--to-partitions", "3", "--commands-stopped"}
	if r := e.authctl(ctx, nil, migrate...); r.code != 1 || !strings.Contains(r.stderr, "still answers") {
		t.Errorf("with the service running: exit %d, %q", r.code, r.stderr)
	}
	for _, svc := range e.h.Svcs {
		if err := svc.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	r := e.authctl(ctx, nil, migrate...)
	if r.code != 0 || !strings.Contains(r.stdout, "migrated from 2 to 3 partitions: "+strconv.Itoa(len(before[accA])+len(before[accB]))+" events") ||
		!strings.Contains(r.stdout, "2 NIR index entries") {
		t.Fatalf("migrate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	l := contract.Layout{Partitions: 3}
	for _, acc := range []string{accA, accB} {
		st, err := e.js.Stream(ctx, l.Stream(l.PartitionOf(acc)))
		if err != nil {
			t.Fatal(err)
		}
		last, err := st.GetLastMsgForSubject(ctx, l.Events(acc))
		if err != nil || last.Header.Get("Auth-Event-Id") != before[acc][len(before[acc])-1] {
			t.Errorf("account %s: last event in %s %v, %v; want %s", acc, l.Stream(l.PartitionOf(acc)), last, err, before[acc][len(before[acc])-1])
		}
	}
	ev := e.authctl(ctx, nil, "events", "-o", "jsonl")
	for _, acc := range []string{accA, accB} {
		if n := strings.Count(ev.stdout, acc); ev.code != 0 || n < len(before[acc]) {
			t.Errorf("authctl events after the migration: exit %d, %d lines of %s, want %d\n%s", ev.code, n, acc, len(before[acc]), ev.stderr)
		}
	}
}
