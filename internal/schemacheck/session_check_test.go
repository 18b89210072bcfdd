package schemacheck_test

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
)

// session.check's request and reply (the web front-end's introspection).
func TestSessionCheckSchemas(t *testing.T) {
	const acc = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	for _, c := range []struct {
		body  string
		valid bool
	}{
		{`{"session":"` + acc + `.token","channel":"web","request_id":"web-1","client_ip":"203.0.113.7","user_agent":"Mozilla/5.0"}`, true},
		{`{"session":""}`, false},
		{`{}`, false},
		{`{"session":"` + acc + `.token","extend":true}`, false},
	} {
		err := schemacheck.ValidateCommand("session.check", []byte(c.body))
		if c.valid {
			wantValid(t, "session.check", err, []byte(c.body))
		} else {
			wantInvalid(t, "session.check", err, []byte(c.body))
		}
	}

	end := time.Date(2025, 7, 9, 9, 2, 0, 0, time.UTC)
	previous := time.Date(2025, 7, 9, 8, 32, 0, 0, time.UTC)
	for _, rep := range []contract.SessionReply{
		{Done: contract.OK(contract.StatusSessionValid), AccountID: acc, ExpiresAt: &end, PreviousLoginAt: &previous, MaskedEmail: "v***@y***.fr"},
		{Done: contract.OK(contract.StatusSessionValid), AccountID: acc, ExpiresAt: &end},
	} {
		raw := encode(t, rep)
		wantValid(t, "session_valid", schemacheck.ValidateReply(raw), raw)
	}
	for what, raw := range map[string]string{
		"valid without its end":          `{"ok":true,"status":"session_valid","account_id":"` + acc + `"}`,
		"valid without its account":      `{"ok":true,"status":"session_valid","expires_at":"2025-07-09T09:02:00Z"}`,
		"previous login elsewhere":       `{"ok":true,"status":"logged_out","previous_login_at":"2025-07-09T08:32:00Z"}`,
		"previous login not a date-time": `{"ok":true,"status":"session_valid","account_id":"` + acc + `","expires_at":"2025-07-09T09:02:00Z","previous_login_at":"09/07/2025 - 10:32"}`,
	} {
		if schemacheck.ValidateReply([]byte(raw)) == nil {
			t.Errorf("%s: want a violation, got none\n%s", what, raw)
		}
	}
}
