package events_test

import (
	"testing"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventsim"
)

// simMessages returns n envelopes of the simulated mix the projector's
// replay benchmarks publish (internal/eventsim, 200 accounts), encoded.
func simMessages(tb testing.TB, n int) [][]byte {
	tb.Helper()
	s := eventsim.New(99)
	accs := s.Accounts(200)
	out := make([][]byte, n)
	for i := range out {
		a := accs[i%len(accs)]
		if i >= len(accs) {
			a = accs[s.Rng.IntN(len(accs))]
		}
		b, err := events.Marshal(s.Next(a))
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// BenchmarkUnmarshal decodes the simulated mix of events, one envelope
// per op: what the projector and the notifier pay per event read.
//
//	go test -run '^$' -bench Unmarshal -benchmem ./internal/events/
func BenchmarkUnmarshal(b *testing.B) {
	msgs := simMessages(b, 4096)
	var size int
	for _, m := range msgs {
		size += len(m)
	}
	b.SetBytes(int64(size / len(msgs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := events.Unmarshal(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalEncodingJSON is Unmarshal before issue 17's one-pass
// decoder: encoding/json, the envelope then its data (the fallback now).
func BenchmarkUnmarshalEncodingJSON(b *testing.B) {
	msgs := simMessages(b, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := events.UnmarshalSlow(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// The simulated mix takes the one-pass path, every message of it.
func TestSimulatedMixDecodesInOnePass(t *testing.T) {
	for i, m := range simMessages(t, 4096) {
		if _, ok := events.DecodeFast(m); !ok {
			t.Fatalf("message %d left to encoding/json: %s", i, m)
		}
	}
}
