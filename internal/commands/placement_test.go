package commands_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// placementStreams are partition p's streams: its events and its two
// buckets' (docs/scale.md, "Placement").
func placementStreams(l contract.Layout, p int) []string {
	return []string{l.Stream(p), "KV_" + l.IndexBucket(p), "KV_" + l.SnapshotBucket(p)}
}

// streamPeers is the nodes holding the stream's replicas, as its info says
// (leader and followers), once it has a leader and every replica is
// current; an error until then.
func streamPeers(ctx context.Context, js jetstream.JetStream, stream string) ([]string, error) {
	// A stream info asked while the stream changes leader (a move ends
	// so) may go unanswered: ask again rather than wait for the test's
	// context.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	ci := info.Cluster
	if ci == nil || ci.Leader == "" {
		return nil, fmt.Errorf("%s has no leader", stream)
	}
	peers := []string{ci.Leader}
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline {
			return nil, fmt.Errorf("%s: replica %s not current", stream, r.Name)
		}
		peers = append(peers, r.Name)
	}
	slices.Sort(peers)
	return peers, nil
}

// On six nodes in two groups of three (server_tags group:a, group:b), R3
// and two partitions placed "group:a;group:b": every replica of partition
// 0's stream and buckets is on the group:a nodes, every one of partition
// 1's on the group:b nodes, so each node holds half the data. Accounts of
// both partitions register and log in through the service, each history
// in its partition's stream, and a NIR registered twice is refused (the
// index routes by key). Then the placement is swapped: opening the store
// again with it moves the six streams (the server's stream move), after
// which every replica is on the other group and logins still work.
//
// Six nodes on this machine's two cores: the test takes about ten
// seconds, most of it the cluster's start and the moves.
func TestPlacementSplitsPartitionsOverTaggedNodes(t *testing.T) {
	const n, replicas = 6, 3
	tags := make([][]string, n)
	groups := map[string][]string{}
	for i := range n {
		g := "group:a"
		if i >= n/2 {
			g = "group:b"
		}
		tags[i] = []string{g}
	}
	c := natsutil.StartTestCluster(t, n, natsutil.WithServerTags(tags...))
	for i := range n {
		groups[tags[i][0]] = append(groups[tags[i][0]], c.NodeName(i))
	}
	placement, err := contract.ParsePlacement("group:a;group:b")
	if err != nil {
		t.Fatal(err)
	}
	h := commandstest.Start(t, commandstest.Options{Cluster: c, Replicas: replicas, Partitions: 2, Placement: placement,
		Policy: testPolicy(), FrontEnd: 4})
	l := h.Parts.Layout()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	onGroups := func(want map[int]string) {
		t.Helper()
		for p, g := range want {
			for _, name := range placementStreams(l, p) {
				testwait.Until(t, natsutil.ClusterReadyTimeout, func() error {
					peers, err := streamPeers(ctx, h.JS, name)
					if err != nil {
						return err
					}
					if !slices.Equal(peers, groups[g]) {
						return fmt.Errorf("partition %d: %s on %v, want the %s nodes %v", p, name, peers, g, groups[g])
					}
					return nil
				})
			}
		}
	}
	onGroups(map[int]string{0: "group:a", 1: "group:b"})

	// Accounts until both partitions have two.
	type account struct{ id, nir string }
	var accounts []account
	perPartition := map[int]int{}
	for i := 0; perPartition[0] < 2 || perPartition[1] < 2; i++ {
		nir := testNIR(i)
		id := h.Register(nir, fmt.Sprintf("p%d@example.fr", i), password)
		accounts = append(accounts, account{id, nir})
		perPartition[l.PartitionOf(id)]++
	}
	lastSeq := map[string]uint64{}
	login := func(a account) {
		t.Helper()
		h.StartLogin(a.nir, password)
		p := l.PartitionOf(a.id)
		st, err := h.JS.Stream(ctx, l.Stream(p))
		if err != nil {
			t.Fatal(err)
		}
		// The login's last event on the partition's own stream. A direct
		// get may be answered by a replica that has not applied it yet:
		// wait until one newer than the account's previous is there.
		testwait.Until(t, 10*time.Second, func() error {
			last, err := st.GetLastMsgForSubject(ctx, l.Events(a.id))
			if err != nil {
				return fmt.Errorf("account %s (partition %d): nothing on %s: %w", a.id, p, l.Events(a.id), err)
			}
			if typ := last.Header.Get(eventstore.HeaderEventType); last.Sequence <= lastSeq[a.id] || typ != events.TypeOTPIssued {
				return fmt.Errorf("account %s: last event %s at %d, want a %s after %d", a.id, typ, last.Sequence, events.TypeOTPIssued, lastSeq[a.id])
			}
			lastSeq[a.id] = last.Sequence
			return nil
		})
		other, err := h.JS.Stream(ctx, l.Stream(1-p))
		if err != nil {
			t.Fatal(err)
		}
		misrouted := l.Subjects().Prefix() + ".events." + strconv.Itoa(1-p) + "." + a.id
		if _, err := other.GetLastMsgForSubject(ctx, misrouted); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("account %s of partition %d: %s in %s: %v", a.id, p, misrouted, l.Stream(1-p), err)
		}
	}
	for _, a := range accounts {
		login(a)
	}
	for _, a := range accounts[:2] {
		rep := h.Req(contract.CmdAccountRegister, commandstest.Obj{"nir": a.nir, "email": "again@example.fr", "password": password,
			"email_validated": true, "affiliation": "active", "channel": "backoffice"})
		if rep.OK || rep.Error == nil || rep.Error.Code != domain.CodeAccountExists {
			t.Errorf("registering NIR of %s again: %+v", a.id, rep)
		}
	}

	// The placement swapped: the store opened again moves every stream.
	swapped, err := contract.ParsePlacement("group:b;group:a")
	if err != nil {
		t.Fatal(err)
	}
	re, err := eventstore.OpenPartitioned(ctx, h.JS, eventstore.JetStreamConfig{Replicas: replicas, Partitions: 2, Placement: swapped})
	if err != nil {
		t.Fatal(err)
	}
	var moved []string
	for _, mv := range re.Moved() {
		moved = append(moved, mv.Stream)
	}
	if want := append(placementStreams(l, 0), placementStreams(l, 1)...); !slices.Equal(moved, want) {
		t.Errorf("moved %v, want %v", moved, want)
	}
	onGroups(map[int]string{0: "group:b", 1: "group:a"})
	again, err := eventstore.OpenPartitioned(ctx, h.JS, eventstore.JetStreamConfig{Replicas: replicas, Partitions: 2, Placement: swapped})
	if err != nil {
		t.Fatal(err)
	}
	if mv := again.Moved(); len(mv) != 0 {
		t.Errorf("opened with the placement it has, moved %v", mv)
	}
	for _, a := range accounts {
		login(a)
	}
}
