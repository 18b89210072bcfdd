package eventstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// streamBlocks returns the stream's message block files on srv's store:
// name -> whether the block is compressed (nats-server writes a "cmp"
// header and the algorithm before a compressed block).
func streamBlocks(tb testing.TB, srv *server.Server, stream string) map[string]bool {
	tb.Helper()
	dirs, err := filepath.Glob(filepath.Join(srv.JetStreamConfig().StoreDir, "*", "streams", stream, "msgs"))
	if err != nil || len(dirs) != 1 {
		tb.Fatalf("stream %s directory: %v %v", stream, dirs, err)
	}
	names, err := filepath.Glob(filepath.Join(dirs[0], "*.blk"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		var ci server.CompressionInfo
		hl, err := ci.UnmarshalMetadata(b)
		out[filepath.Base(n)] = err == nil && hl > 0 && ci.Algorithm == server.S2Compression
	}
	return out
}

// fillBlocks appends big events until the stream has sealed at least one
// more 8 MiB block (the unit the server compresses): the first through
// the store, the others as copies of its message on other accounts'
// subjects (encoding 512 KiB of JSON 17 times is slow under -race).
func fillBlocks(tb testing.TB, ctx context.Context, js jetstream.JetStream, store *eventstore.JetStream) (accounts []string, data []byte) {
	tb.Helper()
	// A long, repetitive reason, compressible as JSON is: 512 KiB a
	// message, so 17 of them fill more than a block.
	reason := strings.Repeat(`{"reason":"password_expired","channel":"web"}`, 512*1024/45)
	acc := events.NewID(time.Now())
	env := events.Wrap(acc, events.LoginRefused{Reason: reason, At: t0}, t0, events.Metadata{})
	res, err := store.Append(ctx, acc, 0, env, "")
	if err != nil {
		tb.Fatal(err)
	}
	st, err := js.Stream(ctx, contract.EventsStream)
	if err != nil {
		tb.Fatal(err)
	}
	msg, err := st.GetMsg(ctx, res.Seq)
	if err != nil {
		tb.Fatal(err)
	}
	accounts = []string{acc}
	for range 16 {
		acc := events.NewID(time.Now())
		if _, err := js.Publish(ctx, store.Subject(acc), msg.Data); err != nil {
			tb.Fatal(err)
		}
		accounts = append(accounts, acc)
	}
	return accounts, msg.Data
}

// AUTH_EVENTS and the buckets are S2-compressed by default; a stream
// made before, uncompressed, is updated to S2 when the service opens it,
// and from the server's next start its full blocks are compressed. Every
// event stays readable, from the old blocks and the new ones.
func TestEventsStreamCompressesItsBlocks(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	// The stream as an older version created it: no compression.
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	old, oldData := fillBlocks(t, ctx, js, store)
	blocks := streamBlocks(t, srv, contract.EventsStream)
	if len(blocks) < 2 {
		t.Fatalf("%d blocks, want a sealed one and the one written", len(blocks))
	}
	for name, packed := range blocks {
		if packed {
			t.Fatalf("block %s compressed on an uncompressed stream", name)
		}
	}

	// The service opens it again: updated to S2, buckets too.
	store, err = eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{contract.EventsStream, "KV_" + eventstore.IndexBucket, "KV_" + eventstore.SnapshotBucket, "KV_" + eventstore.ShadowBucket} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c := st.CachedInfo().Config.Compression; c != jetstream.S2Compression {
			t.Errorf("%s: compression %s after the update, want s2", name, c)
		}
	}

	// From the server's next start, the blocks it fills are compressed.
	srv = natsutil.RestartTestServer(t, srv)
	testwait.For(t, "the stream back after the restart", 10*time.Second, func() bool {
		_, err := store.LastSeq(ctx, old[0])
		return err == nil
	})
	tail := lastBlock(blocks) // the block written when the update came
	fresh, freshData := fillBlocks(t, ctx, js, store)
	after := streamBlocks(t, srv, contract.EventsStream)
	testwait.For(t, "the blocks sealed since the restart compressed", 10*time.Second, func() bool {
		after = streamBlocks(t, srv, contract.EventsStream)
		for name, packed := range after {
			if name != lastBlock(after) && !packed && (name == tail || !hasBlock(blocks, name)) {
				return false
			}
		}
		return true
	})
	if len(after) <= len(blocks) {
		t.Fatalf("blocks %v after the second fill, %v before: no block sealed", after, blocks)
	}
	// Every event reads back whole, old and new.
	st, err := js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, fill := range []struct {
		accounts []string
		data     []byte
	}{{old, oldData}, {fresh, freshData}} {
		for _, acc := range fill.accounts {
			m, err := st.GetLastMsgForSubject(ctx, store.Subject(acc))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Data, fill.data) {
				t.Fatalf("account %s: read back %d bytes, want the %d written", acc, len(m.Data), len(fill.data))
			}
		}
		recs, err := store.Load(ctx, fill.accounts[0], 0)
		if err != nil || len(recs) != 1 || recs[0].Envelope.Type != events.TypeLoginRefused {
			t.Fatalf("load %s: %v %v", fill.accounts[0], recs, err)
		}
	}
}

func hasBlock(blocks map[string]bool, name string) bool {
	_, ok := blocks[name]
	return ok
}

// lastBlock is the name of the block with the highest index.
func lastBlock(blocks map[string]bool) string {
	last, lastN := "", -1
	for name := range blocks {
		var n int
		for _, c := range bytes.TrimSuffix([]byte(name), []byte(".blk")) {
			n = n*10 + int(c-'0')
		}
		if n > lastN {
			last, lastN = name, n
		}
	}
	return last
}
