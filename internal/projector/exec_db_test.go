package projector

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/projections"
)

// The reducers' statements, executed by the real executor on Postgres.
func TestReadModelsOnPostgres(t *testing.T) {
	ctx := context.Background()
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	t0 := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	const acc = "01HACC"
	md := events.Metadata{Channel: "web", ClientIP: "192.0.2.1", UserAgent: "Firefox"}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	envs := []events.Envelope{
		events.Wrap(acc, events.AccountRegistered{NIRHash: "n", EmailSealed: "s", MaskedEmail: "v***@y***.fr", EmailValidated: true,
			PasswordHash: "h", Affiliation: "active", At: at(0)}, at(0), md),
		events.Wrap(acc, events.PasswordFailed{Failures: 1, At: at(1)}, at(1), md),
		events.Wrap(acc, events.PasswordFailed{Failures: 2, At: at(2)}, at(2), md),
		events.Wrap(acc, events.PasswordFailed{Failures: 3, BlockedUntil: at(18), At: at(3)}, at(3), md),
		// A reset lifts the password-failure block (resolved in SQL: the
		// block was set in an earlier batch).
		events.Wrap(acc, events.PasswordChanged{Method: "reset", PasswordHash: "h2", At: at(4)}, at(4), md),
		events.Wrap(acc, events.PasswordVerified{LoginID: "L1", At: at(5)}, at(5), md),
		events.Wrap(acc, events.OTPIssued{LoginID: "L1", CodeHash: "c", CodeSealed: "s", ToSealed: "t", RequestsLastHour: 1, IssuedAt: at(5), ExpiresAt: at(20)}, at(5), md),
		events.Wrap(acc, events.OTPFailed{LoginID: "L1", Failures: 1, At: at(6)}, at(6), md),
		events.Wrap(acc, events.LoginSucceeded{LoginID: "L1", Method: "otp", Channel: "web", SessionHash: "sh", SessionExpiresAt: at(60),
			DeviceHash: "dev1", DeviceExpiresAt: at(0).AddDate(0, 6, 0), At: at(7)}, at(7), md),
		events.Wrap(acc, events.BiometricEnrolled{DeviceID: "bio1", PublicKey: "k", ExpiresAt: at(0).AddDate(0, 6, 0), At: at(8)}, at(8), md),
		events.Wrap(acc, events.OTPQuotaExceeded{LoginID: "L2", BlockedUntil: at(70), At: at(10)}, at(10), md),
		// A reset does not lift a code-quota block.
		events.Wrap(acc, events.PasswordChanged{Method: "reset", PasswordHash: "h3", At: at(11)}, at(11), md),
	}
	recs := records(envs)
	// Batches: [1-4] [5-9] [10-12]
	for _, part := range [][]record{recs[:4], recs[4:9], recs[9:]} {
		if _, err := x.applyBatch(ctx, conn, part, noHoles, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	var (
		status, blockReason, changedBy, lastMethod string
		blockedUntil                               *time.Time
		pwFail, otpFail, requests, trusted, bio    int
		version                                    int64
		updated                                    time.Time
	)
	err := conn.QueryRow(ctx, `SELECT status, coalesce(block_reason, ''), blocked_until, password_failures, otp_failures,
		otp_requests_last_hour, trusted_devices, biometric_devices, password_changed_by, last_login_method, version, updated_at
		FROM auth.accounts WHERE account_id = $1`, acc).Scan(&status, &blockReason, &blockedUntil, &pwFail, &otpFail,
		&requests, &trusted, &bio, &changedBy, &lastMethod, &version, &updated)
	if err != nil {
		t.Fatal(err)
	}
	if status != "active" || blockReason != "otp_quota" || blockedUntil == nil || !blockedUntil.Equal(at(70)) {
		t.Errorf("block: %s %q %v, want the code-quota block kept", status, blockReason, blockedUntil)
	}
	if pwFail != 0 || otpFail != 0 || requests != 0 {
		t.Errorf("counters %d %d %d, want reset by the login", pwFail, otpFail, requests)
	}
	if trusted != 0 || bio != 0 {
		t.Errorf("devices %d %d, want none after the reset", trusted, bio)
	}
	if changedBy != "reset" || lastMethod != "otp" || version != 12 || !updated.Equal(at(11)) {
		t.Errorf("changed_by %q, last method %q, version %d, updated %v", changedBy, lastMethod, version, updated)
	}
	// After the first reset (batch 2) the password block was lifted:
	// replay the first two batches only in another database to see it.
	url2 := newDB(t)
	conn2 := connect(t, url2)
	setup(t, x, conn2)
	for _, part := range [][]record{recs[:4], recs[4:5]} {
		if _, err := x.applyBatch(ctx, conn2, part, noHoles, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, conn2, "SELECT count(*) FROM auth.accounts WHERE blocked_until IS NULL AND block_reason IS NULL AND password_failures = 0"); n != 1 {
		t.Error("a reset did not lift the password-failure block")
	}

	// Attempts: one per login fact, none for the account and password facts.
	if n := count(t, conn, "SELECT count(*) FROM auth.login_attempts"); n != 8 {
		t.Errorf("%d attempts, want 8", n)
	}
	var step, outcome, reason, ip, ref string
	var failures int
	err = conn.QueryRow(ctx, `SELECT step, outcome, reason, client_ip, failures FROM auth.login_attempts WHERE seq = 4`).
		Scan(&step, &outcome, &reason, &ip, &failures)
	if err != nil || step != "password" || outcome != "blocked" || reason != "password_failures" || ip != "192.0.2.1" || failures != 3 {
		t.Errorf("third failure: %s %s %s %s %d %v", step, outcome, reason, ip, failures, err)
	}
	if err := conn.QueryRow(ctx, `SELECT login_ref FROM auth.login_attempts WHERE seq = 9`).Scan(&ref); err != nil || ref != projections.LoginRef("L1") {
		t.Errorf("login_ref %q %v", ref, err)
	}
	if n := count(t, conn, "SELECT count(DISTINCT login_ref) FROM auth.login_attempts WHERE seq BETWEEN 6 AND 9"); n != 1 {
		t.Errorf("the steps of one login have %d refs", n)
	}
	var cp int64
	if err := conn.QueryRow(ctx, "SELECT last_seq FROM auth.projector_checkpoint").Scan(&cp); err != nil || cp != 12 {
		t.Errorf("checkpoint %d %v", cp, err)
	}
}

// Folding a batch's statements gives the rows that applying them one event
// per transaction gives, whatever the batch boundaries.
func TestBatchesEqualOneByOne(t *testing.T) {
	ctx := context.Background()
	recs := records(simHistory(1, 12, 1500))
	x := newExecutor(Schema)

	oneByOne := newDB(t)
	c1 := connect(t, oneByOne)
	setup(t, x, c1)
	for _, r := range recs {
		if _, err := x.applyBatch(ctx, c1, []record{r}, noHoles, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := dumpTables(t, oneByOne)

	for _, split := range []string{"one batch", "random batches"} {
		url := newDB(t)
		c := connect(t, url)
		setup(t, x, c)
		rng := rand.New(rand.NewPCG(7, 7))
		for i := 0; i < len(recs); {
			n := len(recs)
			if split != "one batch" {
				n = 1 + rng.IntN(200)
			}
			j := min(i+n, len(recs))
			if _, err := x.applyBatch(ctx, c, recs[i:j], noHoles, true, nil); err != nil {
				t.Fatal(err)
			}
			i = j
		}
		if got := dumpTables(t, url); got != want {
			t.Fatalf("%s differ from one by one: %s", split, diff(got, want))
		}
	}
	// Sanity: the history exercised what the fold must get right.
	for _, q := range []string{
		"SELECT count(*) FROM auth.login_attempts WHERE reason = 'account_deactivated'",
		"SELECT count(*) FROM auth.accounts WHERE reactivated_at IS NOT NULL",
		"SELECT count(*) FROM auth.accounts WHERE trusted_devices > 0",
		"SELECT count(*) FROM auth.accounts WHERE biometric_devices > 0",
		"SELECT count(*) FROM auth.accounts WHERE blocked_until IS NOT NULL",
		"SELECT count(*) FROM auth.accounts WHERE password_changed_by = 'reset'",
		"SELECT count(*) FROM auth.fraud_source_hourly",
		"SELECT count(*) FROM auth.fraud_device_hourly",
		"SELECT count(*) FROM auth.credential_changes WHERE kind = 'email_change'",
		"SELECT count(*) FROM auth.credential_changes WHERE kind = 'password_reset'",
	} {
		if count(t, c1, q) == 0 {
			t.Errorf("the simulated history never reached: %s", q)
		}
	}
	// version is the stream sequence of the account's last event.
	last := map[string]uint64{}
	for i, r := range recs {
		_ = r
		last[simAccountOf(recs, i)] = uint64(i + 1)
	}
	rows, err := c1.Query(ctx, "SELECT account_id, version FROM auth.accounts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		if uint64(v) != last[id] {
			t.Errorf("%s: version %d, want %d", id, v, last[id])
		}
	}
}

func simAccountOf(recs []record, i int) string {
	for _, s := range recs[i].stmts {
		switch s := s.(type) {
		case projections.CreateAccount:
			return s.AccountID
		case projections.UpdateAccount:
			return s.AccountID
		}
	}
	return ""
}

// Applying a batch again changes nothing: the checkpoint skips it.
func TestCheckpointSkipsWhatWasApplied(t *testing.T) {
	ctx := context.Background()
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	recs := records(simHistory(2, 5, 300))
	if res, err := x.applyBatch(ctx, conn, recs[:200], noHoles, true, nil); err != nil || res.applied != 200 || res.checkpoint != 200 {
		t.Fatalf("%+v %v", res, err)
	}
	before := dumpTables(t, url)
	res, err := x.applyBatch(ctx, conn, recs[100:200], noHoles, true, nil)
	if err != nil || res.applied != 0 || res.checkpoint != 200 {
		t.Fatalf("replayed batch: %+v %v", res, err)
	}
	if got := dumpTables(t, url); got != before {
		t.Fatalf("a replayed batch changed the tables: %s", diff(got, before))
	}
	// Overlapping: only the new part is applied.
	res, err = x.applyBatch(ctx, conn, recs[150:300], noHoles, true, nil)
	if err != nil || res.applied != 100 || res.first != 201 || res.checkpoint != 300 {
		t.Fatalf("overlapping batch: %+v %v", res, err)
	}
}

// A batch that does not continue the checkpoint is applied up to the hole
// only, unless the stream says the missing sequences were deleted.
func TestHoleStopsTheBatch(t *testing.T) {
	ctx := context.Background()
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	recs := records(simHistory(3, 3, 10))
	batch := append(append([]record{}, recs[:4]...), recs[6:]...) // 1-4, 7-10
	present := func(context.Context, uint64, uint64) (bool, error) { return false, nil }
	res, err := x.applyBatch(ctx, conn, batch, present, true, nil)
	if err != nil || !res.gap || res.checkpoint != 4 || res.applied != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	var asked [2]uint64
	deleted := func(_ context.Context, from, to uint64) (bool, error) { asked = [2]uint64{from, to}; return true, nil }
	res, err = x.applyBatch(ctx, conn, recs[6:], deleted, true, nil)
	if err != nil || res.gap || res.checkpoint != 10 || asked != [2]uint64{5, 6} {
		t.Fatalf("%+v %v, asked %v", res, err, asked)
	}
}

// Replicas start together: migrations take turns, and run once.
func TestMigrateConcurrentlyAndAgain(t *testing.T) {
	ctx := context.Background()
	url := newDB(t) // migrated once already
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- Migrate(ctx, url) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cur, latest, err := MigrationVersion(ctx, url)
	if err != nil || cur != latest || cur < 1 {
		t.Fatalf("version %d of %d: %v", cur, latest, err)
	}
	fresh := pgtestNewDatabase(t)
	wg = sync.WaitGroup{}
	errs = make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- Migrate(ctx, fresh) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent first migration: %v", err)
		}
	}
	if err := Migrate(ctx, ""); err != ErrNoDatabase {
		t.Fatalf("no URL: %v", err)
	}
}

// Every settable account field has its column, once.
func TestAccountColumnsCoverEveryField(t *testing.T) {
	var all projections.Field
	for _, c := range accountColumns {
		if all&c.field != 0 {
			t.Errorf("%s: field used twice", c.name)
		}
		all |= c.field
	}
	if all != projections.AllFields {
		t.Errorf("columns cover %b, fields are %b", all, projections.AllFields)
	}
}

// A NUL byte or invalid UTF-8 in a string of an event (a user agent, a
// device id, both from requests) must not stop the projection forever.
func TestStringsPostgresWouldRefuse(t *testing.T) {
	ctx := context.Background()
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	md := events.Metadata{Channel: "app", UserAgent: "evil\x00agent\xff"}
	envs := []events.Envelope{
		events.Wrap("01HNUL", events.AccountRegistered{MaskedEmail: "a\x00b", Affiliation: "active", At: t0}, t0, md),
		events.Wrap("01HNUL", events.BiometricEnrolled{DeviceID: "dev\x00ice", ExpiresAt: t0.AddDate(0, 6, 0), At: t0}, t0, md),
		events.Wrap("01HNUL", events.BiometricLoginFailed{DeviceID: "dev\x00ice", Reason: "bad_signature", At: t0}, t0, md),
	}
	if _, err := x.applyBatch(ctx, conn, records(envs), noHoles, true, nil); err != nil {
		t.Fatal(err)
	}
	var ua, dev, masked string
	if err := conn.QueryRow(ctx, `SELECT l.user_agent, b.device_id, a.masked_email FROM auth.login_attempts l, auth.biometric_devices b, auth.accounts a`).
		Scan(&ua, &dev, &masked); err != nil {
		t.Fatal(err)
	}
	if ua != "evilagent\uFFFD" || dev != "device" || masked != "ab" {
		t.Fatalf("%q %q %q", ua, dev, masked)
	}
}
