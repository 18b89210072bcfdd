package domain

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// What session.check reads: which session is open, until when, and the
// login before it (« Dernière connexion »). Rows read as sentences, both
// sides of every boundary.
func TestOpenSession(t *testing.T) {
	second := succeeded("login-2", at(10*minute))
	second.SessionHash = "sess#2"
	for _, c := range []struct {
		name     string
		given    []events.Event
		hash     string
		at       time.Time
		open     bool
		until    time.Time
		previous time.Time
	}{
		{name: "first_login_opens_a_session_with_no_previous_login",
			given: []events.Event{registered, succeeded("login-1", t0)}, hash: "sess#", at: t0,
			open: true, until: at(30 * minute)},
		{name: "second_login_remembers_the_first_as_previous",
			given: []events.Event{registered, succeeded("login-1", t0), second}, hash: "sess#2", at: at(10 * minute),
			open: true, until: at(40 * minute), previous: t0},
		{name: "the_first_session_keeps_its_own_previous_login_after_a_second_one",
			given: []events.Event{registered, succeeded("login-1", t0), second}, hash: "sess#", at: at(29 * minute),
			open: true, until: at(30 * minute)},
		{name: "session_is_open_one_second_before_its_end",
			given: []events.Event{registered, succeeded("login-1", t0)}, hash: "sess#", at: at(30*minute - sec),
			open: true, until: at(30 * minute)},
		{name: "session_ends_thirty_minutes_after_login_whatever_the_activity",
			given: []events.Event{registered, succeeded("login-1", t0)}, hash: "sess#", at: at(30 * minute)},
		{name: "logout_closes_the_session",
			given: []events.Event{registered, succeeded("login-1", t0), events.SessionEnded{SessionHash: "sess#", At: at(minute)}},
			hash:  "sess#", at: at(2 * minute)},
		{name: "another_token_opens_nothing",
			given: []events.Event{registered, succeeded("login-1", t0)}, hash: "other#", at: t0},
		{name: "deactivation_closes_every_session",
			given: []events.Event{registered, succeeded("login-1", t0), events.AccountDeactivated{At: at(minute)}},
			hash:  "sess#", at: at(2 * minute)},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := Account{ID: "acc"}
			for _, e := range c.given {
				a = Evolve(a, e)
			}
			s, open := a.OpenSession(c.hash, c.at)
			if open != c.open || open != a.SessionValid(c.hash, c.at) {
				t.Fatalf("open %v (SessionValid %v), want %v", open, a.SessionValid(c.hash, c.at), c.open)
			}
			if !s.ExpiresAt.Equal(c.until) || !s.PreviousLoginAt.Equal(c.previous) {
				t.Fatalf("until %s previous %s, want %s and %s", s.ExpiresAt, s.PreviousLoginAt, c.until, c.previous)
			}
		})
	}
}
