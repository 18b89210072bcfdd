package events

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotAppended: a message on an account's subject of the events stream
// that the commands service did not append.
//
// NATS lets any connection name any reply subject, and the server answers
// a JetStream API request (a stream info, a direct get with no headers…)
// on it; a stream stores whatever lands on its subjects. So a connection
// that may only read the stream (the projector's, the notifier's NATS
// users) can still have an API answer, or a header-less copy of another
// account's event, stored on auth.events.<victim> (found by the issue 15
// review). The permissions cannot forbid it; the readers refuse it instead:
// an event the commands service appended always carries its id in the
// Auth-Event-Id header and its account as the subject's last token. Copies
// that keep the headers are refused by the stream itself, through the
// Nats-Expected-Last-Subject-Sequence each append carries.
var ErrNotAppended = errors.New("not appended by the commands service")

// VerifyStored checks that env, read from subject with eventIDHeader as its
// Auth-Event-Id header, is an event the commands service appended on that
// account's subject: the header equals the envelope's id, and the subject
// ends with the envelope's account id. It returns an error wrapping
// ErrNotAppended, naming what differs (never the ids' values: an account
// id is personal data in logs).
func VerifyStored(subject, eventIDHeader string, env Envelope) error {
	switch {
	case eventIDHeader == "":
		return fmt.Errorf("%w: no Auth-Event-Id header", ErrNotAppended)
	case eventIDHeader != env.ID:
		return fmt.Errorf("%w: the Auth-Event-Id header is not the envelope's id", ErrNotAppended)
	case env.AccountID == "" || !strings.HasSuffix(subject, "."+env.AccountID):
		return fmt.Errorf("%w: the envelope's account is not the subject's", ErrNotAppended)
	}
	return nil
}
