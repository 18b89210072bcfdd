package histcheck

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// Violation is one contradiction found.
type Violation struct {
	Rule    string // the predicate's id (see Rules)
	Account string
	Event   string // the event's id, if one is at fault
	Request string // the request_id, if a request is at fault
	Detail  string
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] account %s", v.Rule, v.Account)
	if v.Request != "" {
		fmt.Fprintf(&b, " request %s", v.Request)
	}
	if v.Event != "" {
		fmt.Fprintf(&b, " event %s", v.Event)
	}
	return b.String() + ": " + v.Detail
}

// Report is what Check found.
type Report struct {
	Ops        int // requests recorded, retries included
	Unknown    int // of which of unknown outcome
	Accounts   int // accounts whose history was checked
	Events     int // events checked
	Violations []Violation
}

func (r Report) String() string {
	return fmt.Sprintf("%d requests (%d of unknown outcome), %d accounts, %d events checked, %d violations",
		r.Ops, r.Unknown, r.Accounts, r.Events, len(r.Violations))
}

// The idempotency window (docs/idempotency.md): a retry within it is
// answered from the fact its first try recorded.
const (
	retryWindow   = 2 * time.Minute
	retryRequests = 16
)

// Check judges a history against the accounts' recorded events (every
// account the history touched, in stream order).
func Check(p domain.Policy, ops []Op, histories map[string][]events.Envelope) Report {
	r := Report{Ops: len(ops), Accounts: len(histories)}
	for _, o := range ops {
		if o.Unknown() {
			r.Unknown++
		}
	}
	byCause := map[string][]events.Envelope{}
	pos := map[string]int{} // event id -> its index in its account's history
	ids := make([]string, 0, len(histories))
	for acc := range histories {
		ids = append(ids, acc)
	}
	sort.Strings(ids)
	for _, acc := range ids {
		for i, e := range histories[acc] {
			r.Events++
			pos[e.ID] = i
			byCause[e.CausationID] = append(byCause[e.CausationID], e)
		}
	}
	add := func(v Violation) { r.Violations = append(r.Violations, v) }

	// Requests and their retries, by request_id.
	groups := map[string][]Op{}
	var order []string
	for _, o := range ops {
		if _, ok := groups[o.RequestID]; !ok {
			order = append(order, o.RequestID)
		}
		groups[o.RequestID] = append(groups[o.RequestID], o)
	}
	for _, id := range order {
		checkGroup(p, groups[id], byCause[id], histories, pos, add)
	}
	// Every event answers a request of the history.
	for _, acc := range ids {
		for _, e := range histories[acc] {
			if _, ok := groups[e.CausationID]; !ok {
				add(Violation{Rule: "ack.requested", Account: acc, Event: e.ID,
					Detail: fmt.Sprintf("%s event whose causation_id %q names no request of the history", e.Type, e.CausationID)})
			}
		}
	}
	// Refusals that cite a block cite one the stream holds.
	for _, o := range ops {
		checkCitedBlock(o, histories[o.Account], add)
	}
	// Replies that accepted a session accepted an open one.
	for _, o := range ops {
		checkSessionAccepted(o, histories[o.Account], add)
	}
	// The invariants of each account's history.
	for _, acc := range ids {
		for _, v := range CheckHistory(p, histories[acc]) {
			add(v)
		}
	}
	return r
}

// checkGroup checks the tries of one request against the events recorded
// under its request_id.
func checkGroup(p domain.Policy, tries []Op, evs []events.Envelope, histories map[string][]events.Envelope, pos map[string]int, add func(Violation)) {
	id := tries[0].RequestID
	acc := tries[0].Account
	if len(evs) > 1 {
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		add(Violation{Rule: "ack.one-fact", Account: evs[0].AccountID, Request: id,
			Detail: fmt.Sprintf("one request (%s, %d tries) recorded %d events: %v", tries[0].Command, len(tries), len(evs), types)})
		return
	}
	var e *events.Envelope
	if len(evs) == 1 {
		e = &evs[0]
		if acc == "" {
			acc = e.AccountID
		}
	}
	for i, o := range tries {
		x := expect(o, p)
		if e != nil && o.Account != "" && e.AccountID != o.Account {
			add(Violation{Rule: "ack.account", Account: o.Account, Request: id, Event: e.ID,
				Detail: fmt.Sprintf("%s for account %s recorded %s on account %s", o.Command, o.Account, e.Type, e.AccountID)})
			continue
		}
		switch x.class {
		case recorded:
			if e == nil {
				add(Violation{Rule: "ack.event", Account: acc, Request: id,
					Detail: fmt.Sprintf("%s (try %d, clock %s) answered %q, and the stream holds no event for it (want %v)", o.Command, o.Try, o.Clock.Format(time.RFC3339), o.Outcome(), x.types)})
			} else if msg := x.allows(o, *e); msg != "" {
				add(Violation{Rule: "ack.event", Account: acc, Request: id, Event: e.ID,
					Detail: fmt.Sprintf("%s (try %d): %s", o.Command, o.Try, msg)})
			} else if d, ok := e.Data.(events.LoginSucceeded); ok && o.ReplySession != "" && o.ReplySession != d.SessionHash {
				add(Violation{Rule: "ack.event", Account: acc, Request: id, Event: e.ID,
					Detail: fmt.Sprintf("%s (try %d): the reply's session is not the one login.succeeded recorded", o.Command, o.Try)})
			}
		case unknown, maybe, nothing:
			if e == nil {
				continue
			}
			msg := ""
			if x.class == nothing {
				msg = fmt.Sprintf("reply %q records nothing, but a %s event holds its request_id", o.Outcome(), e.Type)
			} else {
				msg = x.allows(o, *e)
			}
			if msg == "" {
				continue
			}
			if x.class == unknown {
				add(Violation{Rule: "ack.phantom", Account: acc, Request: id, Event: e.ID,
					Detail: fmt.Sprintf("%s of unknown outcome left %s, which no outcome of it records", o.Command, e.Type)})
				continue
			}
			// A later try may have recorded the event after this reply;
			// an earlier try's event may be too old to answer this retry
			// from (the idempotency window).
			laterMayRecord := false
			for _, l := range tries[i+1:] {
				if expect(l, p).class != nothing {
					laterMayRecord = true
				}
			}
			if laterMayRecord || !fresh(*e, o, histories[e.AccountID], pos) {
				continue
			}
			add(Violation{Rule: "ack.phantom", Account: acc, Request: id, Event: e.ID,
				Detail: fmt.Sprintf("%s (try %d, clock %s): %s", o.Command, o.Try, o.Clock.Format(time.RFC3339), msg)})
		}
	}
}

// fresh tells whether a retry o must have been answered from the event e
// (recorded before it, within the idempotency window); when e may come
// after o (no earlier try), e is fresh: o saw nothing and e appeared anyway.
func fresh(e events.Envelope, o Op, hist []events.Envelope, pos map[string]int) bool {
	if o.Try == 0 {
		return true
	}
	if !o.Clock.Before(e.OccurredAt.Add(retryWindow)) {
		return false
	}
	later := 0
	for _, x := range hist[pos[e.ID]+1:] {
		if !x.OccurredAt.After(o.Clock) {
			later++
		}
	}
	return later < retryRequests
}

// checkCitedBlock: a refusal with blocked_until names a block the account's
// history recorded before it, and that no unlock lifted in an earlier round.
func checkCitedBlock(o Op, hist []events.Envelope, add func(Violation)) {
	if o.Account == "" || o.Reply == nil || o.Reply.Error == nil || o.Reply.Error.BlockedUntil == nil {
		return
	}
	until := *o.Reply.Error.BlockedUntil
	var found *events.Envelope
	for i, e := range hist {
		if e.OccurredAt.After(o.Clock) {
			break
		}
		if b := blockedUntil(e.Data); !b.IsZero() && sameTime(b, &until) {
			found = &hist[i]
			continue
		}
		if found != nil && found.CausationID != o.RequestID && e.OccurredAt.Before(o.Clock) {
			lifted := false
			switch d := e.Data.(type) {
			case events.AccountUnlocked, events.AccountReactivated:
				_, flow := found.Data.(events.ChangeRequestsExceeded)
				_, flow2 := found.Data.(events.ChangeCodeFailed)
				lifted = !flow && !flow2
			case events.PasswordChanged:
				_, pw := found.Data.(events.PasswordFailed)
				lifted = pw && d.Method == events.MethodReset
			}
			if lifted {
				add(Violation{Rule: "ack.block-in-force", Account: o.Account, Request: o.RequestID, Event: e.ID,
					Detail: fmt.Sprintf("%s at %s refused %q citing the block until %s, lifted by %s at %s", o.Command, o.Clock.Format(time.RFC3339), o.Outcome(), until.Format(time.RFC3339), e.Type, e.OccurredAt.Format(time.RFC3339))})
				return
			}
		}
	}
	if found == nil {
		add(Violation{Rule: "ack.block-in-force", Account: o.Account, Request: o.RequestID,
			Detail: fmt.Sprintf("%s at %s refused %q citing a block until %s that no event recorded", o.Command, o.Clock.Format(time.RFC3339), o.Outcome(), until.Format(time.RFC3339))})
		return
	}
	if !o.Clock.Before(until) && found.CausationID != o.RequestID {
		add(Violation{Rule: "ack.block-in-force", Account: o.Account, Request: o.RequestID, Event: found.ID,
			Detail: fmt.Sprintf("%s at %s refused %q citing a block that ended at %s", o.Command, o.Clock.Format(time.RFC3339), o.Outcome(), until.Format(time.RFC3339))})
	}
}

// acceptsSession: replies that say the request's session was open.
var acceptsSession = map[string]bool{
	contract.StatusSessionValid: true, contract.StatusCodeSent: true, contract.StatusCodeVerified: true,
	contract.StatusPasswordChanged: true, contract.StatusEmailChanged: true, contract.StatusOfferRecorded: true,
	contract.StatusBiometricEnrolled: true,
}

// checkSessionAccepted: a reply that accepted a session did so while the
// session was open. The state is folded from the events of earlier rounds
// (clock strictly before the request's): what happened in the request's own
// round may come before or after it, so a session opened or closed in that
// round is not judged.
func checkSessionAccepted(o Op, hist []events.Envelope, add func(Violation)) {
	if o.Session == "" || o.Reply == nil || !o.Reply.OK || !acceptsSession[o.Reply.Status] || len(hist) == 0 {
		return
	}
	a := domain.Account{ID: o.Account}
	opened := false
	for _, e := range hist {
		if !e.OccurredAt.Before(o.Clock) {
			if d, ok := e.Data.(events.LoginSucceeded); ok && d.SessionHash == o.Session && e.OccurredAt.Equal(o.Clock) {
				return // opened in this round
			}
			continue
		}
		if d, ok := e.Data.(events.LoginSucceeded); ok && d.SessionHash == o.Session {
			opened = true
		}
		a = domain.Evolve(a, e.Data)
	}
	if !opened {
		return // a session this history does not know (another account's): ack.account's business
	}
	if !a.SessionValid(o.Session, o.Clock) {
		add(Violation{Rule: "reply.session-open", Account: o.Account, Request: o.RequestID,
			Detail: fmt.Sprintf("%s at %s answered %q with a session that was expired, logged out or closed in an earlier round", o.Command, o.Clock.Format(time.RFC3339), o.Outcome())})
	}
}
