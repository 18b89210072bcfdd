package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

var (
	sizeAccounts = flag.Int("size-accounts", 20_000, "BenchmarkEventSizes: accounts imported")
	sizeLogins   = flag.Int("size-logins", 10_000, "BenchmarkEventSizes: web logins")
	// The defaults are production's; -size-uncompressed -size-retention=0
	// is the stream as it was before issue 16's S2 and retention.
	sizeUncompressed = flag.Bool("size-uncompressed", false, "BenchmarkEventSizes: the stream without S2")
	sizeRetention    = flag.Duration("size-retention", 8760*time.Hour, "BenchmarkEventSizes: AUTH_ATTEMPTS_RETENTION (0: none)")
)

// A tiny measurement: every event of the run is counted under its type,
// the records add up to the stream's bytes (EventSizes checks it), and a
// login is three events.
func TestEventSizesCountEveryEvent(t *testing.T) {
	rep, err := EventSizes(context.Background(), EventSizeOptions{Accounts: 40, Logins: 20, Concurrency: 8, AttemptsRetention: 8760 * time.Hour, Progress: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.Table())
	want := map[string]int{events.TypeAccountRegistered: 40, events.TypePasswordVerified: 20, events.TypeOTPIssued: 20, events.TypeLoginSucceeded: 20}
	for _, ts := range rep.Types {
		if ts.Count != want[ts.Type] {
			t.Errorf("%s: %d events, want %d", ts.Type, ts.Count, want[ts.Type])
		}
		delete(want, ts.Type)
	}
	if len(want) > 0 {
		t.Errorf("types not seen: %v", want)
	}
	if rep.LoginEvents != 60 || rep.PerLogin != 3 {
		t.Errorf("%d login events, %.2f per login; want 60 and 3", rep.LoginEvents, rep.PerLogin)
	}
	if rep.IndexKeys != 40 {
		t.Errorf("NIR index: %d keys, want 40", rep.IndexKeys)
	}
	// With a retention, each account that logged in has a snapshot
	// covering its attempts.
	if rep.SnapshotsKeys != 20 {
		t.Errorf("snapshots: %d keys, want one per account that logged in (20)", rep.SnapshotsKeys)
	}
}

// BenchmarkEventSizes measures the bytes of each event type, per
// registered account and per login event, in the stream and on disk;
// docs/retention.md quotes it:
//
//	go test -run '^$' -bench EventSizes -benchtime 1x ./internal/bench/
//
// -size-accounts and -size-logins set the sizes (the defaults fill a few
// 8 MiB blocks in each phase: a block is compressed once full).
func BenchmarkEventSizes(b *testing.B) {
	for b.Loop() {
		rep, err := EventSizes(context.Background(), EventSizeOptions{Accounts: *sizeAccounts, Logins: *sizeLogins,
			Uncompressed: *sizeUncompressed, AttemptsRetention: *sizeRetention,
			Progress: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }})
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintln(os.Stderr, "\n"+rep.Table())
		b.ReportMetric(rep.RegistrationDisk, "disk_B/account")
		b.ReportMetric(rep.LoginEventDisk, "disk_B/login_event")
	}
}
