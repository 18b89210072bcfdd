// Package histcheck checks a recorded history of requests and replies
// against the events the service appended (Jepsen-style, issue 14 item 4):
// every acknowledged fact has its event, no event contradicts a reply, and
// each account's event sequence keeps the rules of docs/rules.md with the
// policy's numbers. See docs/history-check.md.
//
// It reads no clock and does no I/O: the runner (internal/histcheck/histrun)
// records the history and reads the stream; Check judges them.
package histcheck

import (
	"sync"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// Op is one request sent and what came back.
type Op struct {
	Index     int       // order of recording (the end of the request)
	Client    int       // the client that sent it
	Account   string    // the account the client meant (account id), if known
	Command   string    // contract.Cmd*
	RequestID string    // the request's request_id (same for its retries)
	Try       int       // 0: the first try; n: the n-th retry, same id and body
	Body      []byte    // the body sent, for reproductions
	Clock     time.Time // the service's (fixed) clock while the request ran
	Start     time.Time // wall clock
	End       time.Time
	// Reply is the decoded reply; nil when none came (a transport error:
	// the outcome is unknown).
	Reply *contract.AnyReply
	Err   string // transport error, if any
	// Session is the keyed hash of the session token the request used,
	// ReplySession that of the session its reply opened (as the service
	// stores them: secrets.Keys.TokenHash("session", token)).
	Session      string
	ReplySession string
}

// Unknown tells whether the op's outcome is unknown: no reply, or
// `unavailable` (the service could not tell what happened).
func (o Op) Unknown() bool {
	return o.Reply == nil || (!o.Reply.OK && o.Reply.Error != nil && o.Reply.Error.Code == "unavailable")
}

// Outcome is the reply's status, or its error code, or "unknown".
func (o Op) Outcome() string {
	switch {
	case o.Reply == nil:
		return "unknown"
	case o.Reply.OK:
		return o.Reply.Status
	case o.Reply.Error != nil:
		return o.Reply.Error.Code
	}
	return "unknown"
}

// History records ops from concurrent clients.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records an op and returns its index.
func (h *History) Add(o Op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	o.Index = len(h.ops)
	h.ops = append(h.ops, o)
	return o.Index
}

// Ops returns a copy of the ops recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}
