package contract_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// One partition is the historical layout, names and subjects unchanged, so
// a deployment without AUTH_PARTITIONS needs no migration.
func TestOnePartitionIsTheHistoricalLayout(t *testing.T) {
	const acc = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	for _, l := range []contract.Layout{{}, {Partitions: 1}, {Prefix: "auth", Partitions: 1}} {
		if l.N() != 1 || l.Split() || l.PartitionOf(acc) != 0 {
			t.Errorf("%+v: N %d split %v partition %d", l, l.N(), l.Split(), l.PartitionOf(acc))
		}
		for _, c := range []struct{ got, want string }{
			{l.Stream(0), contract.EventsStream},
			{l.IndexBucket(0), contract.NIRIndexBucket},
			{l.SnapshotBucket(0), contract.SnapshotBucket},
			{l.StreamSubjects(0), contract.Default.AllEvents()},
			{l.Events(acc), contract.Default.Events(acc)},
		} {
			if c.got != c.want {
				t.Errorf("%+v: got %q, want %q", l, c.got, c.want)
			}
		}
		if id, ok := l.AccountOf(contract.Default.Events(acc)); !ok || id != acc {
			t.Errorf("%+v: AccountOf %q %v", l, id, ok)
		}
	}
}

func TestPartitionedLayout(t *testing.T) {
	const acc = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	l := contract.Layout{Prefix: "x", Partitions: 4}
	p := l.PartitionOf(acc)
	for _, c := range []struct{ got, want string }{
		{l.Stream(3), "AUTH_EVENTS_3"},
		{l.IndexBucket(0), "AUTH_NIR_INDEX_0"},
		{l.SnapshotBucket(2), "AUTH_SNAPSHOTS_2"},
		{l.StreamSubjects(1), "x.events.1.>"},
		{l.Events(acc), fmt.Sprintf("x.events.%d.%s", p, acc)},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if got := l.Streams(); len(got) != 4 || got[0] != "AUTH_EVENTS_0" {
		t.Errorf("Streams %v", got)
	}
	if id, ok := l.AccountOf(l.Events(acc)); !ok || id != acc {
		t.Errorf("AccountOf %q %v", id, ok)
	}
	other := (p + 1) % 4
	for _, s := range []string{
		fmt.Sprintf("x.events.%d.%s", other, acc), // wrong partition
		"x.events." + acc, "x.events.0", "x.events.0.", "x.events.00." + acc, "x.events.0.a.b", "auth.events.0.A",
	} {
		if id, ok := l.AccountOf(s); ok {
			t.Errorf("AccountOf(%q) = %q, want none", s, id)
		}
	}
}

// Partition spreads ULIDs evenly: with 4 partitions and 8,000 ids, each
// partition gets 2,000 ± 10%.
func TestPartitionSpreadsAccounts(t *testing.T) {
	counts := make([]int, 4)
	now := time.Now()
	for range 8000 {
		counts[contract.Partition(events.NewID(now), 4)]++
	}
	for p, c := range counts {
		if c < 1800 || c > 2200 {
			t.Errorf("partition %d has %d of 8000 ids", p, c)
		}
	}
}

// Our partition function is the server's: a stream whose subject transform
// uses nats-server's partition(4, token) mapping stores each of 3,000
// account ids under the partition contract.Partition gives it. So an
// operator could move the routing into the server (a stream subject
// transform, or a mapping in the account) without moving any account.
func TestPartitionIsTheServersPartitionMapping(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const n = 4
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "MAPPED",
		Subjects: []string{"in.*"},
		Storage:  jetstream.MemoryStorage,
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      "in.*",
			Destination: fmt.Sprintf("auth.events.{{partition(%d,1)}}.{{wildcard(1)}}", n),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	const ids = 3000
	want := map[string]bool{}
	now := time.Now()
	var acks []jetstream.PubAckFuture
	for range ids {
		id := events.NewID(now)
		want[contract.Layout{Partitions: n}.Events(id)] = true
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: "in." + id})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != ids {
		t.Fatalf("the stream has %d subjects, want %d", len(info.State.Subjects), ids)
	}
	for s := range info.State.Subjects {
		if !want[s] {
			t.Fatalf("the server stored %q: not where contract.Partition puts that account", s)
		}
	}
}
