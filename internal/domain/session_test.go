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
	second := succeeded("login-2", at(10*min_))
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
			open: true, until: at(30 * min_)},
		{name: "second_login_remembers_the_first_as_previous",
			given: []events.Event{registered, succeeded("login-1", t0), second}, hash: "sess#2", at: at(10 * min_),
			open: true, until: at(40 * min_), previous: t0},
		{name: "the_first_session_keeps_its_own_previous_login_after_a_second_one",
			given: []events.Event{registered, succeeded("login-1", t0), second}, hash: "sess#", at: at(29 * min_),
			open: true, until: at(30 * min_)},
		{name: "session_is_open_one_second_before_its_end",
			given: []events.Event{registered, succeeded("login-1", t0)}, hash: "sess#", at: at(30*min_ - sec),
			open: true, until: at(30 * min_)},
		{name: "session_ends_thirty_minutes_after_login_whatever_the_activity",
			given: []events.Event{registered, succeeded("login-1", t0)}, hash: "sess#", at: at(30 * min_)},
		{name: "logout_closes_the_session",
			given: []events.Event{registered, succeeded("login-1", t0), events.SessionEnded{SessionHash: "sess#", At: at(min_)}},
			hash:  "sess#", at: at(2 * min_)},
		{name: "another_token_opens_nothing",
			given: []events.Event{registered, succeeded("login-1", t0)}, hash: "other#", at: t0},
		{name: "deactivation_closes_every_session",
			given: []events.Event{registered, succeeded("login-1", t0), events.AccountDeactivated{At: at(min_)}},
			hash:  "sess#", at: at(2 * min_)},
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
