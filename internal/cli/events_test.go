package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// scriptHistory records a small history on the fixed clock, a minute
// between steps: two registrations, a login with a wrong password and a
// wrong code, a block by three wrong passwords and an adviser's unlock.
func scriptHistory(e *testEnv) (idA, idB string) {
	t := e.t
	step := func() { e.clock.Advance(time.Minute) }
	idA = e.register(nirA, "valerie@yahoo.fr") // 14:30
	step()
	idB = e.register(nirB, "jean.dupont@free.fr") // 14:31
	step()
	web := func(body map[string]any) map[string]any {
		body["channel"], body["client_ip"] = "web", "192.0.2.10"
		return body
	}
	if r := e.req("login.password", web(map[string]any{"nir": nirA, "password": "faux"})); r.Error == nil { // 14:32
		t.Fatal("wrong password accepted")
	}
	step()
	r := e.req("login.password", web(map[string]any{"nir": nirA, "password": password})) // 14:33
	if r.Status != contract.StatusOTPRequired {
		t.Fatalf("login.password: %+v", r.Error)
	}
	if s := e.req("login.otp.send", web(map[string]any{"login_id": r.LoginID})); !s.OK {
		t.Fatalf("otp.send: %+v", s.Error)
	}
	step()
	code := e.waitCode(idA, 1)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	e.req("login.otp.verify", web(map[string]any{"login_id": r.LoginID, "code": wrong})) // 14:34
	step()
	if v := e.req("login.otp.verify", web(map[string]any{"login_id": r.LoginID, "code": code})); !v.OK { // 14:35
		t.Fatalf("otp.verify: %+v", v.Error)
	}
	step()
	for range 3 { // 14:36
		e.req("login.password", map[string]any{"nir": nirB, "password": "faux", "channel": "app", "client_ip": "2001:db8::7"})
	}
	step()
	if u := e.req("account.unlock", map[string]any{"nir": nirB, "channel": "backoffice"}); !u.OK { // 14:37
		t.Fatalf("unlock: %+v", u.Error)
	}
	return idA, idB
}

var ulidRE = regexp.MustCompile(`\b[0-9A-HJKMNP-TV-Z]{26}\b`)

// placeholder is a name as wide as a ULID, so the table stays aligned.
func placeholder(name string) string {
	return "<" + name + strings.Repeat("-", 24-len(name)) + ">"
}

// normalizeIDs replaces each ULID by a name in order of first appearance,
// so the golden file does not depend on the random part of the ids.
func normalizeIDs(s string, names map[string]string) string {
	return ulidRE.ReplaceAllStringFunc(s, func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		n := placeholder(fmt.Sprintf("ID%d", len(names)+1))
		names[id] = n
		return n
	})
}

func TestEventsTableGolden(t *testing.T) {
	e := newTestEnv(t)
	idA, idB := scriptHistory(e)
	names := map[string]string{idA: placeholder("ACCOUNT_A"), idB: placeholder("ACCOUNT_B")}
	var doc strings.Builder
	t.Setenv("AUTH_SECRET_KEY", testSecretKey) // never a flag: a command line shows in ps
	for _, args := range [][]string{
		{"events"},
		{"events", "--account", "2 69 05 49 588 157", "--type", "login."},
		{"events", "--account", idB, "--type", "login.password_failed", "--type", "account.unlocked"},
		{"events", "--since", "2023-01-05T14:33:00+01:00", "--until", "2023-01-05T14:35:00+01:00"},
	} {
		res := e.authctl(ctxTimeout(t, 20*time.Second), nil, args...)
		if res.code != 0 {
			t.Fatalf("authctl %v: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
		quoted := make([]string, len(args))
		for i, a := range args {
			switch {
			case a == testSecretKey:
				a = `"$AUTH_SECRET_KEY"`
			case strings.Contains(a, " "):
				a = `"` + a + `"`
			}
			quoted[i] = a
		}
		shown := strings.Join(quoted, " ")
		fmt.Fprintf(&doc, "$ authctl %s\n%s\n", normalizeIDs(shown, names), normalizeIDs(res.stdout, names))
	}
	got := doc.String()
	for _, secret := range []string{"v1.", "$argon2id$", "valerie@yahoo.fr", nirA} {
		if strings.Contains(got, secret) {
			t.Errorf("the table shows %q", secret)
		}
	}
	golden := filepath.Join("testdata", "events.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run TestEventsTableGolden -update)", err)
	}
	if got != string(want) {
		t.Errorf("events output differs from %s (go test ./internal/cli -run TestEventsTableGolden -update rewrites it):\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}

// jsonl gives each envelope as stored, which events.Unmarshal reads back.
func TestEventsJSONL(t *testing.T) {
	e := newTestEnv(t)
	idA, _ := scriptHistory(e)
	res := e.authctl(ctxTimeout(t, 20*time.Second), nil, "events", "--output", "jsonl")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	stream, err := e.js.Stream(context.Background(), contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	seq := uint64(0)
	types := map[string]int{}
	for sc.Scan() {
		seq++
		env, err := events.Unmarshal(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", seq, err)
		}
		types[env.Type]++
		stored, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if string(stored.Data) != sc.Text() {
			t.Errorf("line %d is not the envelope as stored", seq)
		}
	}
	info, _ := stream.Info(context.Background())
	if seq != info.State.Msgs || seq == 0 {
		t.Fatalf("%d lines for %d events", seq, info.State.Msgs)
	}
	if types[events.TypeAccountRegistered] != 2 || types[events.TypePasswordFailed] != 4 || types[events.TypeLoginSucceeded] != 1 {
		t.Errorf("types %v", types)
	}

	// Filtered by account id and type.
	res = e.authctl(ctxTimeout(t, 20*time.Second), nil, "events", "-o", "jsonl", "--account", idA, "--type", "login.otp_issued")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 1 {
		t.Fatalf("exit %d, %d lines:\n%s%s", res.code, len(lines), res.stdout, res.stderr)
	}
	if env, err := events.Unmarshal([]byte(lines[0])); err != nil || env.AccountID != idA || env.Type != events.TypeOTPIssued {
		t.Fatalf("%+v %v", env, err)
	}
}

// --follow prints the replay, then new events as they come, until the
// context ends (Ctrl-C).
func TestEventsFollow(t *testing.T) {
	e := newTestEnv(t)
	idA := e.register(nirA, "valerie@yahoo.fr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errw syncBuffer
	done := make(chan runResult, 1)
	go func() {
		done <- e.authctlTo(ctx, nil, &out, &errw, "events", "--follow", "--account", idA)
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s%s", what, out.String(), errw.String())
			}
			time.Sleep(20 * time.Millisecond) // polling, until the deadline above
		}
	}
	waitFor("account.registered")
	e.clock.Advance(time.Minute)
	e.register(nirB, "jean.dupont@free.fr") // another account: not shown
	e.req("account.deactivate", map[string]any{"account_id": idA, "reason": "demande du titulaire", "channel": "backoffice"})
	waitFor("account.deactivated")
	cancel()
	res := <-done
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if n := strings.Count(res.stdout, "\n"); n != 3 {
		t.Errorf("%d lines, want the header and 2 events:\n%s", n, res.stdout)
	}
	if !strings.Contains(res.stdout, `reason="demande du titulaire"`) {
		t.Errorf("no reason in:\n%s", res.stdout)
	}
	// The ordered consumer is gone once authctl has stopped.
	waitNoConsumers(t, e)
}

func waitNoConsumers(t *testing.T, e *testEnv) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	streams := []string{contract.EventsStream}
	if e.h.Parts != nil {
		streams = e.h.Parts.Layout().Streams()
	}
	for {
		n := 0
		for _, name := range streams {
			stream, err := e.js.Stream(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			for range stream.ListConsumers(context.Background()).Info() {
				n++
			}
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d consumers left on the streams", n)
		}
		time.Sleep(50 * time.Millisecond) // polling, until the deadline above
	}
}

func TestEventsBadFlags(t *testing.T) {
	e := newTestEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"events", "--output", "yaml"}, "neither table, jsonl nor cloudevents"},
		{[]string{"events", "--format", "cloudevents", "--output", "jsonl"}, "give one of them"},
		{[]string{"events", "--since", "hier"}, "neither a time"},
		{[]string{"events", "--type", "login.nope"}, "unknown event type"},
		{[]string{"events", "--since", "1h", "--until", "2h"}, "must be before"},
		{[]string{"events", "--account", "12345"}, "neither an account id"},
		{[]string{"events", "--account", nirA, "--var-dir", t.TempDir()}, "no secret key"},
		{[]string{"events", "--stream", "NOPE"}, "no stream NOPE"},
	} {
		res := e.authctl(ctxTimeout(t, 10*time.Second), nil, c.args...)
		if res.code == 0 || !strings.Contains(res.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, res.code, res.stderr, c.want)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2023-01-05T14:30:00+01:00": now,
		"2023-01-05T13:30:00Z":      now,
		"2023-01-05T14:30":          now,
		"2023-01-05":                time.Date(2023, 1, 4, 23, 0, 0, 0, time.UTC),
		"90m":                       now.Add(-90 * time.Minute),
		"7d":                        now.Add(-7 * 24 * time.Hour),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "xd", "demain"} {
		if _, err := parseWhen(in, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", in)
		}
	}
}

func TestTypeMatcher(t *testing.T) {
	m, err := typeMatcher([]string{"login.", "account.unlocked", "biometric*"})
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]bool{
		"login.otp_failed": true, "account.unlocked": true, "account.registered": false, "biometric.enrolled": true, "session.ended": false,
	} {
		if m(typ) != want {
			t.Errorf("%s: %v", typ, !want)
		}
	}
	if m, _ := typeMatcher([]string{"session"}); !m("session.ended") {
		t.Error("a bare aggregate name is a prefix")
	}
}

// --since and --until compare with occurred_at, the time the table shows,
// not with the stream's storage time: after the dev clock moved 30 days
// ahead, an event stamped then is found by its own time (stored now), and
// durations count back from the dev clock's now.
func TestEventsSinceUntilReadOccurredAtAheadOfStorage(t *testing.T) {
	dev := &clock.Dev{}
	e := newTestEnvOn(t, dev)
	if err := app.KeepDevClock(context.Background(), e.js, "auth", 1, dev, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	before := e.register(nirA, "valerie@yahoo.fr") // stamped and stored now
	if _, err := dev.Advance(30 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	ahead := e.register(nirB, "jean.dupont@free.fr") // stamped 30 days ahead, stored now
	for _, env := range e.history(ahead) {
		if env.OccurredAt.Before(time.Now().Add(29 * 24 * time.Hour)) {
			t.Fatalf("the event was stamped %v: not ahead of its storage", env.OccurredAt)
		}
	}
	in29days := time.Now().Add(29 * 24 * time.Hour).Format(time.RFC3339)
	for _, c := range []struct {
		args       []string
		shows, not []string
	}{
		{[]string{"--since", in29days}, []string{ahead}, []string{before}},
		{[]string{"--until", in29days}, []string{before}, []string{ahead}},
		{[]string{"--since", "1h"}, []string{ahead}, []string{before}},
		{[]string{"--since", "31d", "--until", "1h"}, []string{before}, []string{ahead}},
		{[]string{"--since", in29days, "--output", "jsonl"}, []string{ahead}, []string{before}},
	} {
		res := e.authctl(ctxTimeout(t, 20*time.Second), nil, append([]string{"events"}, c.args...)...)
		if res.code != 0 {
			t.Fatalf("events %v: exit %d\n%s%s", c.args, res.code, res.stdout, res.stderr)
		}
		for _, id := range c.shows {
			if !strings.Contains(res.stdout, id) {
				t.Errorf("events %v does not show %s:\n%s", c.args, id, res.stdout)
			}
		}
		for _, id := range c.not {
			if strings.Contains(res.stdout, id) {
				t.Errorf("events %v shows %s:\n%s", c.args, id, res.stdout)
			}
		}
	}
}

// After a key rotation, `authctl events --account <NIR>` still finds an
// account indexed under the previous key when it is given that key too
// (AUTH_SECRET_KEY_PREVIOUS), and says it finds none without it; a bad
// previous key is told by the setting's name, never shown.
func TestEventsByNIRAfterKeyRotation(t *testing.T) {
	e := newTestEnv(t)
	id := e.h.Register(nirA, "valerie@yahoo.fr", password) // indexed under testMasterKey
	newKey := base64.StdEncoding.EncodeToString([]byte("a key that is not the service key"[:32]))
	t.Setenv("AUTH_SECRET_KEY", newKey)
	res := e.authctl(ctxTimeout(t, 10*time.Second), nil, "events", "--account", nirA, "-o", "jsonl")
	if res.code == 0 || !strings.Contains(res.stderr, "no account for this NIR") {
		t.Fatalf("new key alone: exit %d, stderr %q; want no account", res.code, res.stderr)
	}
	t.Setenv("AUTH_SECRET_KEY_PREVIOUS", testSecretKey)
	res = e.authctl(ctxTimeout(t, 10*time.Second), nil, "events", "--account", nirA, "-o", "jsonl")
	if res.code != 0 || !strings.Contains(res.stdout, id) {
		t.Fatalf("new key, previous key given: exit %d, stderr %q; want the account's events", res.code, res.stderr)
	}
	t.Setenv("AUTH_SECRET_KEY_PREVIOUS", testSecretKey+",not-a-key")
	res = e.authctl(ctxTimeout(t, 10*time.Second), nil, "events", "--account", nirA)
	if res.code == 0 || !strings.Contains(res.stderr, "AUTH_SECRET_KEY_PREVIOUS: key 2: not base64") ||
		strings.Contains(res.stderr, testSecretKey) || strings.Contains(res.stderr, newKey) {
		t.Fatalf("bad previous key: exit %d, stderr %q", res.code, res.stderr)
	}
}
