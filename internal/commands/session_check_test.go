package commands_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// session.check, row by row: what the web front-end asks before each
// logged-in page. Each row logs in (at t0 unless it says otherwise), does
// something, and checks at the row's time on the instance that did NOT
// serve the change, so a stale cache would show.
func TestSessionCheck(t *testing.T) {
	for _, r := range []struct {
		name string
		// then runs after a first login (session s) and returns the
		// session to check.
		then     func(h *harness, acc, s string) string
		after    time.Duration // clock moved after then, before the check
		want     string        // status or error code
		until    time.Time
		previous time.Time
	}{
		{name: "a_fresh_session_is_valid_for_30_minutes_with_no_previous_login",
			then: func(h *harness, acc, s string) string { return s }, want: "session_valid", until: t0.Add(30 * time.Minute)},
		{name: "a_second_login_tells_the_first_as_previous",
			then: func(h *harness, acc, s string) string {
				h.Clock.Advance(10 * time.Minute)
				return h.Login(acc, nir1, password)
			}, want: "session_valid", until: t0.Add(40 * time.Minute), previous: t0},
		{name: "one_second_before_its_end_it_is_still_valid",
			then: func(h *harness, acc, s string) string { return s }, after: 30*time.Minute - time.Second,
			want: "session_valid", until: t0.Add(30 * time.Minute)},
		{name: "thirty_minutes_after_login_it_has_ended_whatever_the_checks",
			then: func(h *harness, acc, s string) string {
				for range 5 { // checking is not activity that extends it
					h.Clock.Advance(5 * time.Minute)
					wantStatus(h.T, h.Req("session.check", obj{"session": s}), "session_valid")
				}
				return s
			}, after: 5 * time.Minute, want: domain.CodeSessionInvalid},
		{name: "after_logout_on_another_instance_it_is_invalid",
			then: func(h *harness, acc, s string) string {
				wantStatus(h.T, handle(h, 1, "session.check", obj{"session": s}), "session_valid") // instance 1 caches it open
				wantStatus(h.T, handle(h, 0, "session.logout", obj{"session": s}), "logged_out")
				return s
			}, want: domain.CodeSessionInvalid},
		{name: "a_password_change_elsewhere_closes_it",
			then: func(h *harness, acc, s string) string {
				wantStatus(h.T, handle(h, 1, "session.check", obj{"session": s}), "session_valid")
				other := h.Login(acc, nir1, password)
				h.changePassword(acc, other, "Nouveau-mot-2025")
				return s
			}, want: domain.CodeSessionInvalid},
		{name: "a_forged_token_on_the_same_account_is_invalid",
			then: func(h *harness, acc, s string) string { return acc + ".forged" }, want: domain.CodeSessionInvalid},
		{name: "a_token_without_an_account_is_invalid",
			then: func(h *harness, acc, s string) string { return "not-a-session" }, want: domain.CodeSessionInvalid},
		{name: "a_missing_token_is_an_invalid_request",
			then: func(h *harness, acc, s string) string { return "" }, want: domain.CodeInvalidRequest},
	} {
		t.Run(r.name, func(t *testing.T) {
			h := newHarness(t, 2, testPolicy())
			acc := h.Register(nir1, "valerie@yahoo.fr", password)
			s := h.Login(acc, nir1, password)
			check := r.then(h, acc, s)
			h.Clock.Advance(r.after)
			events := len(h.History(acc))
			rep := handle(h, 1, "session.check", obj{"session": check, "channel": "web", "client_ip": "203.0.113.7", "user_agent": "Mozilla/5.0"})
			if got := codeOf(rep); got != r.want {
				t.Fatalf("session.check: %s, want %s (%+v)", got, r.want, rep.Error)
			}
			if n := len(h.History(acc)); n != events {
				t.Fatalf("session.check recorded %d events", n-events)
			}
			if !rep.OK {
				return
			}
			if rep.AccountID != acc || rep.ExpiresAt == nil || !rep.ExpiresAt.Equal(r.until) || rep.MaskedEmail != "v***@y***.fr" {
				t.Fatalf("session.check: %+v", rep)
			}
			switch {
			case r.previous.IsZero() && rep.PreviousLoginAt != nil:
				t.Fatalf("previous_login_at %s after a first login", rep.PreviousLoginAt)
			case !r.previous.IsZero() && (rep.PreviousLoginAt == nil || !rep.PreviousLoginAt.Equal(r.previous)):
				t.Fatalf("previous_login_at %v, want %s", rep.PreviousLoginAt, r.previous)
			}
		})
	}
}

// handle runs a request on one instance, as the NATS queue group would
// have sent it there, and keeps the reply for the schema check.
func handle(h *harness, instance int, subject string, body obj) Reply {
	h.T.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.T.Fatal(err)
	}
	var rep Reply
	if err := json.Unmarshal(h.Handle(instance, subject, b), &rep); err != nil {
		h.T.Fatal(err)
	}
	return rep
}

func wantStatus(t testing.TB, rep Reply, status string) {
	t.Helper()
	if !rep.OK || rep.Status != status {
		t.Fatalf("want %s, got %s (%+v)", status, codeOf(rep), rep.Error)
	}
}
