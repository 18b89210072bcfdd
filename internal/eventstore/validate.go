package eventstore

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/ameli-auth/authsvc/internal/events"
)

// ValidateAccountID rejects an account id that cannot be a single subject
// token: a '.' would split it into several tokens (and let one account read
// another's events through a wildcard), '*' and '>' are wildcards, and NATS
// subjects cannot carry whitespace. Account ids are ULIDs, so any of these
// is a caller bug.
func ValidateAccountID(accountID string) error {
	if accountID == "" {
		return fmt.Errorf("eventstore: empty account id")
	}
	if i := strings.IndexFunc(accountID, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r)
	}); i >= 0 {
		return fmt.Errorf("eventstore: account id %q is not a valid subject token (character at %d)", accountID, i)
	}
	return nil
}

// checkEnvelope refuses an event filed under another account: once stored
// it could never be removed from the wrong history.
func checkEnvelope(accountID string, env events.Envelope) error {
	if env.AccountID != accountID {
		return fmt.Errorf("eventstore: event %s is for account %q, appended to %q", env.ID, env.AccountID, accountID)
	}
	return nil
}
