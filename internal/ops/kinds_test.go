package ops_test

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/ops/opstest"
)

// Each fact that carries a block counts as a lockout of its kind, the
// failures before the limit do not; each code or link issued counts by
// kind; the kinds are the documented ones, whatever a fact's flow says.
func TestLockoutAndCodeKindsOfEachFact(t *testing.T) {
	until := time.Date(2023, 1, 5, 13, 45, 0, 0, time.UTC)
	for _, c := range []struct {
		name          string
		fact          events.Event
		lockout, code string
	}{
		{"third_wrong_password_blocks", events.PasswordFailed{Failures: 3, BlockedUntil: until}, "password", ""},
		{"a_wrong_password_under_the_limit_does_not", events.PasswordFailed{Failures: 1}, "", ""},
		{"third_wrong_code_blocks", events.OTPFailed{Failures: 3, BlockedUntil: until}, "otp", ""},
		{"a_wrong_code_under_the_limit_does_not", events.OTPFailed{Failures: 2}, "", ""},
		{"one_code_too_many_blocks", events.OTPQuotaExceeded{BlockedUntil: until}, "otp_quota", ""},
		{"too_many_password_change_codes", events.ChangeRequestsExceeded{Flow: events.FlowPasswordChange, BlockedUntil: until}, "password_change_requests", ""},
		{"too_many_email_change_codes", events.ChangeRequestsExceeded{Flow: events.FlowEmailChange, BlockedUntil: until}, "email_change_requests", ""},
		{"wrong_email_change_codes_block", events.ChangeCodeFailed{Flow: events.FlowEmailChange, Failures: 3, BlockedUntil: until}, "email_change_code", ""},
		{"a_wrong_change_code_under_the_limit_does_not", events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 1}, "", ""},
		{"an_unknown_flow_keeps_the_label_set_fixed", events.ChangeCodeFailed{Flow: "someone@exemple.fr", BlockedUntil: until}, "other_change_code", ""},
		{"login_code", events.OTPIssued{}, "", "login"},
		{"password_change_code", events.PasswordChangeCodeIssued{}, "", "password_change"},
		{"email_change_code", events.EmailChangeCodeIssued{}, "", "email_change"},
		{"reset_link", events.PasswordResetRequested{}, "", "password_reset"},
		{"a_login_issues_nothing", events.LoginSucceeded{}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ops.LockoutKind(c.fact); got != c.lockout {
				t.Errorf("lockout kind %q, want %q", got, c.lockout)
			}
			if got := ops.CodeKind(c.fact); got != c.code {
				t.Errorf("code kind %q, want %q", got, c.code)
			}
		})
	}
	// Facts of a NIR without an account: a block counts, a reset link (not
	// mailed, no account to mail) does not, nor is anything appended.
	reg := ops.NewRegistry()
	m := ops.NewCommandMetrics(reg)
	m.Recorded(events.PasswordFailed{Failures: 3, BlockedUntil: until}, true)
	m.Recorded(events.PasswordResetRequested{}, true)
	if opstest.Value(t, reg, "auth_lockouts_total", "kind", "password") != 1 ||
		opstest.Value(t, reg, "auth_codes_issued_total", "kind", "password_reset") != 0 ||
		opstest.Value(t, reg, "auth_events_appended_total", "type", "login.password_failed") != 0 {
		t.Error("a shadow fact was counted as appended or as a code, or its block was not counted")
	}
}

// A mail's outcomes go to their counters: a failed attempt apart from the
// mails done with; a mail of no known kind is "unknown".
func TestMailOutcomesByKind(t *testing.T) {
	reg := ops.NewRegistry()
	m := ops.NewNotifierMetrics(reg)
	m.Mail("login_code", ops.MailFailed)
	m.Mail("login_code", ops.MailFailed)
	m.Mail("login_code", ops.MailSent)
	m.Mail("lockout", ops.MailExpired)
	m.Mail("", ops.MailDeadLettered)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"auth_notifier_send_failures_total", []string{"kind", "login_code"}, 2},
		{"auth_notifier_mails_total", []string{"kind", "login_code", "outcome", "sent"}, 1},
		{"auth_notifier_mails_total", []string{"kind", "login_code", "outcome", "failed"}, 0},
		{"auth_notifier_mails_total", []string{"kind", "lockout", "outcome", "expired"}, 1},
		{"auth_notifier_mails_total", []string{"kind", "unknown", "outcome", "dead_lettered"}, 1},
	} {
		if got := opstest.Value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
