package commands_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/events"
)

// BenchmarkCommandHistory compares one command on an account with 10,000
// past events to the same command on a new account, with the state cached
// (warm) and after a restart of the instance (cold: snapshot, then the tail).
//
//	go test -run '^$' -bench CommandHistory -benchtime 2000x ./internal/commands/
func BenchmarkCommandHistory(b *testing.B) {
	h := newHarness(b, 1, testPolicy())
	svc := h.Svcs[0]
	fresh := h.Register(nir1, "valerie@yahoo.fr", password)
	long := h.Register(nir2, "jean@exemple.fr", password)
	ctx := context.Background()
	seq, err := h.Store.LastSeq(ctx, long)
	if err != nil {
		b.Fatal(err)
	}
	// 10,000 past logins, appended as the service would.
	for i := 0; i < 10_000; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		env := events.Wrap(long, events.PasswordVerified{LoginID: events.NewID(at), At: at}, at, events.Metadata{Channel: "web"})
		res, err := h.Store.Append(ctx, long, seq, env, "")
		if err != nil {
			b.Fatal(err)
		}
		seq = res.Seq
	}
	for _, c := range []struct {
		name string
		acc  string
	}{{"fresh", fresh}, {"history_10k", long}} {
		i := 0
		command := func() {
			aff := "pending"
			if i%2 == 1 {
				aff = "active"
			}
			i++
			rep := svc.Handle(ctx, "account.set_affiliation", fmt.Appendf(nil, `{"account_id":%q,"affiliation":%q}`, c.acc, aff))
			if string(rep[:11]) != `{"ok":true,` {
				b.Fatalf("%s", rep)
			}
		}
		command() // the first command after the bulk load writes the snapshot
		commands.WaitSnapshots(svc)
		b.Run(c.name+"/warm", func(b *testing.B) {
			for b.Loop() {
				command()
			}
		})
		b.Run(c.name+"/cold", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				commands.WaitSnapshots(svc)
				commands.DropCachedStates(svc)
				b.StartTimer()
				command()
			}
		})
	}
}
