package projector

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/projections"
)

// The read models agree with the decider's own state, folded by
// domain.Evolve over the same history: counters, block, devices.
func TestReadModelsAgreeWithTheDecider(t *testing.T) {
	ctx := context.Background()
	// Few accounts, long histories: expiries are reached. Changes of
	// credentials end every trusted device, so a random mix rarely keeps
	// the bound reached at the end: one account ends with remembered
	// browsers past the bound, an email change that forgets them, and as
	// many again.
	envs := simHistory(5, 6, 3000)
	envs = append(envs, rememberedBrowsers(envs, 2*projections.KeepTrustedDevices)...)
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	recs := records(envs)
	for i := 0; i < len(recs); i += 250 {
		if _, err := x.applyBatch(ctx, conn, recs[i:min(i+250, len(recs))], noHoles, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	state := map[string]domain.Account{}
	for _, e := range envs {
		state[e.AccountID] = domain.Evolve(state[e.AccountID], e.Data)
	}
	maxDevices := 0
	for id, a := range state {
		var (
			status, reason          string
			blocked                 *time.Time
			pwf, otpf, trusted, bio int
			refs                    []string
			bioIDs                  []string
		)
		err := conn.QueryRow(ctx, `SELECT status, coalesce(block_reason, ''), blocked_until, password_failures, otp_failures,
			trusted_devices, biometric_devices FROM auth.accounts WHERE account_id = $1`, id).
			Scan(&status, &reason, &blocked, &pwf, &otpf, &trusted, &bio)
		if err != nil {
			t.Fatal(err)
		}
		if status != a.Status || reason != a.BlockReason || pwf != a.PasswordFailures || otpf != a.OTPFailures {
			t.Errorf("%s: row %s %q %d %d, decider %s %q %d %d", id, status, reason, pwf, otpf, a.Status, a.BlockReason, a.PasswordFailures, a.OTPFailures)
		}
		if (blocked == nil) != a.BlockedUntil.IsZero() || blocked != nil && !blocked.Equal(a.BlockedUntil) {
			t.Errorf("%s: blocked_until %v, decider %v", id, blocked, a.BlockedUntil)
		}
		rows, err := conn.Query(ctx, "SELECT device_ref FROM auth.trusted_devices WHERE account_id = $1 ORDER BY seq", id)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var r string
			rows.Scan(&r)
			refs = append(refs, r)
		}
		rows.Close()
		var want []string
		for _, d := range a.TrustedDevices {
			want = append(want, projections.DeviceRef(d.Hash))
		}
		if strings.Join(refs, ",") != strings.Join(want, ",") || trusted != len(want) {
			t.Errorf("%s: trusted devices %v (count %d), decider %v", id, refs, trusted, want)
		}
		maxDevices = max(maxDevices, len(want))
		rows, err = conn.Query(ctx, "SELECT device_id FROM auth.biometric_devices WHERE account_id = $1", id)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var d string
			rows.Scan(&d)
			bioIDs = append(bioIDs, d)
		}
		rows.Close()
		var wantBio []string
		for _, b := range a.Biometrics {
			wantBio = append(wantBio, b.DeviceID)
		}
		sort.Strings(bioIDs)
		sort.Strings(wantBio)
		if strings.Join(bioIDs, ",") != strings.Join(wantBio, ",") || bio != len(wantBio) {
			t.Errorf("%s: biometric devices %v (count %d), decider %v", id, bioIDs, bio, wantBio)
		}
	}
	if maxDevices < projections.KeepTrustedDevices {
		t.Errorf("no account reached the device bound (max %d): the history is too short to test it", maxDevices)
	}
}

// rememberedBrowsers is a tail for the history: an active account logs in
// from n new browsers it remembers (6 months each), confirms a new email
// address (which forgets them), then logs in from n more.
func rememberedBrowsers(envs []events.Envelope, n int) []events.Envelope {
	state := map[string]domain.Account{}
	var at time.Time
	for _, e := range envs {
		state[e.AccountID] = domain.Evolve(state[e.AccountID], e.Data)
		if e.OccurredAt.After(at) {
			at = e.OccurredAt
		}
	}
	id := ""
	for _, e := range envs {
		if state[e.AccountID].Status == domain.StatusActive {
			id = e.AccountID
			break
		}
	}
	var out []events.Envelope
	add := func(event func(at time.Time) events.Event) {
		at = at.Add(time.Minute)
		out = append(out, events.Wrap(id, event(at), at, events.Metadata{Channel: "web"}))
	}
	login := func(i int) {
		n := strconv.Itoa(i)
		add(func(at time.Time) events.Event {
			return events.LoginSucceeded{LoginID: "tail-login-" + n, Method: events.MethodOTP, Channel: "web",
				SessionHash: "tail-session-" + n, SessionExpiresAt: at.Add(time.Hour),
				DeviceHash: "tail-device-" + n, DeviceExpiresAt: at.AddDate(0, 6, 0), At: at}
		})
	}
	for i := range n {
		login(i)
	}
	add(func(at time.Time) events.Event {
		return events.EmailChanged{EmailSealed: "tail-sealed", MaskedEmail: "t***@a***.fr", KeptSessionHash: "tail-session-0", At: at}
	})
	for i := range n {
		login(n + i)
	}
	return out
}
