package eventstore_test

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/eventstore/storetest"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

func openPartitioned(t *testing.T, n int) (*eventstore.Partitioned, jetstream.JetStream) {
	t.Helper()
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	p, err := eventstore.OpenPartitioned(ctxFor(t), js, eventstore.JetStreamConfig{Partitions: n})
	if err != nil {
		t.Fatal(err)
	}
	return p, js
}

// The partitioned store meets the store contract with one partition (the
// historical layout) and with four.
func TestPartitionedContract(t *testing.T) {
	for _, n := range []int{1, 4} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			storetest.RunPartitioned(t, n, func(t *testing.T) (eventstore.Store, eventstore.Index, eventstore.Snapshots) {
				p, _ := openPartitioned(t, n)
				return p, p.Index(), p.Snapshots()
			})
		})
	}
}

// With four partitions each account's events land on its partition's
// stream, under <prefix>.events.<p>.<account>, and each stream keeps deny
// delete and deny purge; index keys and snapshots spread over the
// partitions' buckets. With one, the historical names.
func TestPartitionedRoutesByAccount(t *testing.T) {
	p, js := openPartitioned(t, 4)
	ctx := ctxFor(t)
	l := contract.Layout{Partitions: 4}
	perStream := map[string]int{}
	now := time.Now()
	for i := range 64 {
		acc := events.NewID(now)
		if _, err := p.Append(ctx, acc, 0, failed(acc, 1), ""); err != nil {
			t.Fatal(err)
		}
		perStream[l.Stream(l.PartitionOf(acc))]++
		if err := p.Index().Create(ctx, "key"+strconv.Itoa(i), acc); err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, l.Stream(l.PartitionOf(acc)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetLastMsgForSubject(ctx, l.Events(acc)); err != nil {
			t.Fatalf("account %s not on %s: %v", acc, l.Events(acc), err)
		}
	}
	for q := range 4 {
		st, err := js.Stream(ctx, l.Stream(q))
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := info.Config
		if !c.DenyDelete || !c.DenyPurge || c.Subjects[0] != l.StreamSubjects(q) || c.Metadata[eventstore.MetaPartitions] != "4" || c.Metadata[eventstore.MetaPartition] != strconv.Itoa(q) {
			t.Errorf("%s: %+v", c.Name, c)
		}
		if int(info.State.Msgs) != perStream[c.Name] || info.State.Msgs == 0 {
			t.Errorf("%s holds %d events, want %d (and some)", c.Name, info.State.Msgs, perStream[c.Name])
		}
		kv, err := js.KeyValue(ctx, l.IndexBucket(q))
		if err != nil {
			t.Fatal(err)
		}
		if st, err := kv.Status(ctx); err != nil || st.Values() == 0 {
			t.Errorf("%s: %v values, %v", l.IndexBucket(q), st, err)
		}
	}
	if _, err := js.Stream(ctx, contract.EventsStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("AUTH_EVENTS with 4 partitions: %v", err)
	}
	// A partition's store refuses an account of another partition.
	acc := events.NewID(now)
	other := p.Partitions()[(l.PartitionOf(acc)+1)%4]
	if _, err := other.Append(ctx, acc, 0, failed(acc, 1), ""); err == nil {
		t.Error("partition store appended an account of another partition")
	}
}

// A component started with another number of partitions than the streams
// were made with refuses them (ErrLayout) instead of splitting an
// account's history over two streams.
func TestPartitionedRefusesAnotherLayout(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	if _, err := eventstore.OpenPartitioned(ctx, js, eventstore.JetStreamConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.OpenPartitioned(ctx, js, eventstore.JetStreamConfig{Partitions: 4}); err != nil {
		t.Fatalf("reopening with the same layout: %v", err)
	}
	if _, err := eventstore.OpenPartitioned(ctx, js, eventstore.JetStreamConfig{Partitions: 8}); !errors.Is(err, eventstore.ErrLayout) {
		t.Errorf("4 partitions opened with 8: %v, want ErrLayout", err)
	}
	// One partition beside four: the server refuses the overlapping subjects.
	if _, err := eventstore.OpenPartitioned(ctx, js, eventstore.JetStreamConfig{}); err == nil {
		t.Error("AUTH_EVENTS created beside four partitions")
	}
}

// FindLayout reads the layout from the server's streams: none, one
// partition (AUTH_EVENTS), four (AUTH_EVENTS_0's metadata).
func TestFindLayout(t *testing.T) {
	ctx := ctxFor(t)
	for _, n := range []int{1, 4} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			srv := natsutil.RunTestServer(t)
			js, err := jetstream.New(natsutil.Connect(t, srv))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := eventstore.FindLayout(ctx, js, "auth"); !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Fatalf("no stream: %v, want stream not found", err)
			}
			if _, err := eventstore.OpenPartitioned(ctx, js, eventstore.JetStreamConfig{Partitions: n, Prefix: "auth"}); err != nil {
				t.Fatal(err)
			}
			l, err := eventstore.FindLayout(ctx, js, "auth")
			if err != nil || l.N() != n || l.Prefix != "auth" {
				t.Fatalf("%+v %v, want %d partitions", l, err, n)
			}
		})
	}
}

// Each partition's stream and buckets get their tag set (the sets cycle;
// one partition takes the first). Reopened without a placement they keep
// theirs; with another, each is updated and reported as a move. A single
// server keeps the placement in the configuration and moves nothing: the
// move itself is the cluster test's (internal/commands,
// TestPlacementSplitsPartitionsOverTaggedNodes).
func TestPlacementTagsEveryStreamOfAPartition(t *testing.T) {
	ctx := ctxFor(t)
	placement := func(s string) contract.Placement {
		pl, err := contract.ParsePlacement(s)
		if err != nil {
			t.Fatal(err)
		}
		return pl
	}
	for _, n := range []int{1, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			srv := natsutil.RunTestServer(t)
			js, err := jetstream.New(natsutil.Connect(t, srv))
			if err != nil {
				t.Fatal(err)
			}
			l := contract.Layout{Partitions: n}
			tagsOf := func() map[string]string {
				out := map[string]string{}
				for p := range n {
					for _, name := range []string{l.Stream(p), "KV_" + l.IndexBucket(p), "KV_" + l.SnapshotBucket(p)} {
						st, err := js.Stream(ctx, name)
						if err != nil {
							t.Fatal(err)
						}
						if pl := st.CachedInfo().Config.Placement; pl != nil {
							out[name] = strings.Join(pl.Tags, ",")
						} else {
							out[name] = ""
						}
					}
				}
				return out
			}
			want := func(tags ...string) map[string]string {
				out := map[string]string{}
				for p := range n {
					for _, name := range []string{l.Stream(p), "KV_" + l.IndexBucket(p), "KV_" + l.SnapshotBucket(p)} {
						out[name] = tags[p%len(tags)]
					}
				}
				return out
			}
			open := func(pl string) []eventstore.Move {
				t.Helper()
				s, err := eventstore.OpenPartitioned(ctx, js, eventstore.JetStreamConfig{Partitions: n, Placement: placement(pl)})
				if err != nil {
					t.Fatal(err)
				}
				return s.Moved()
			}
			if mv := open("group:a;group:b,ssd"); len(mv) != 0 {
				t.Errorf("created, moved %v", mv)
			}
			if got, w := tagsOf(), want("group:a", "group:b,ssd"); !maps.Equal(got, w) {
				t.Errorf("placed %v, want %v", got, w)
			}
			if mv := open(""); len(mv) != 0 {
				t.Errorf("reopened without a placement, moved %v", mv)
			}
			if got, w := tagsOf(), want("group:a", "group:b,ssd"); !maps.Equal(got, w) {
				t.Errorf("reopened without a placement: %v, want %v kept", got, w)
			}
			mv := open("group:c")
			if got, w := tagsOf(), want("group:c"); !maps.Equal(got, w) {
				t.Errorf("replaced: %v, want %v", got, w)
			}
			if len(mv) != 3*n || mv[0].Stream != l.Stream(0) || !slices.Equal(mv[0].From, []string{"group:a"}) || !slices.Equal(mv[0].To, []string{"group:c"}) {
				t.Errorf("moves %+v, want the %d streams and buckets", mv, 3*n)
			}
			if mv := open("group:c"); len(mv) != 0 {
				t.Errorf("reopened with its placement, moved %v", mv)
			}
		})
	}
}
