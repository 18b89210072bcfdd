package notifier

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/mail"
)

// mails is the one place that says which events are mailed, and how.
// Adding a mail for a new event type is one line here (and its template
// in internal/mail). Every other event type is acknowledged unread.
var mails = map[string]mapper{
	events.TypeOTPIssued:                on(loginCode),
	events.TypePasswordChangeCodeIssued: on(passwordChangeCode),
	events.TypePasswordChanged:          on(passwordChanged),
	events.TypePasswordResetRequested:   on(passwordReset),
	events.TypeEmailChangeCodeIssued:    on(emailChangeCode),
	events.TypeEmailChanged:             on(emailChanged),
	events.TypePasswordFailed:           on(passwordLockout),
	events.TypeOTPFailed:                on(otpLockout),
	events.TypeOTPQuotaExceeded:         on(quotaLockout),
	events.TypeLoginSucceeded:           on(newTrustedDevice),
}

// outgoing is what one event asks to mail, before its secrets are opened.
type outgoing struct {
	kind     mail.Kind
	toSealed string                         // the address, sealed for the account
	staleAt  time.Time                      // not sent from then on; zero: never stale
	data     func(open opener) (any, error) // the template's data
}

// opener opens a value sealed for the event's account.
type opener func(sealed string) (string, error)

// settings are what the mappers need beyond the event.
type settings struct {
	publicURL    string
	resetPath    string
	noticeMaxAge time.Duration
}

// mapper turns an event into its mail; ok false: this event mails nothing
// (a failure that blocks nothing, a profile without notices…).
type mapper func(env events.Envelope, s settings) (out outgoing, ok bool, err error)

// on adapts a mapper of one event type to the table's shape.
func on[E events.Event](f func(e E, env events.Envelope, s settings) (outgoing, bool)) mapper {
	return func(env events.Envelope, s settings) (outgoing, bool, error) {
		e, ok := env.Data.(E)
		if !ok {
			return outgoing{}, false, fmt.Errorf("event %s of type %s carries %T", env.ID, env.Type, env.Data)
		}
		out, send := f(e, env, s)
		return out, send, nil
	}
}

func value(v any) func(opener) (any, error) {
	return func(opener) (any, error) { return v, nil }
}

// code builds the data of a code mail once the code is opened.
func code(sealed string, build func(code string) any) func(opener) (any, error) {
	return func(open opener) (any, error) {
		c, err := open(sealed)
		if err != nil {
			return nil, fmt.Errorf("sealed code: %w", err)
		}
		return build(c), nil
	}
}

func loginCode(e events.OTPIssued, _ events.Envelope, _ settings) (outgoing, bool) {
	life := e.ExpiresAt.Sub(e.IssuedAt)
	return outgoing{kind: mail.KindLoginCode, toSealed: e.ToSealed, staleAt: e.ExpiresAt,
		data: code(e.CodeSealed, func(c string) any { return mail.LoginCode{Code: c, Lifetime: life} })}, true
}

func passwordChangeCode(e events.PasswordChangeCodeIssued, _ events.Envelope, _ settings) (outgoing, bool) {
	life := e.ExpiresAt.Sub(e.IssuedAt)
	return outgoing{kind: mail.KindPasswordChangeCode, toSealed: e.ToSealed, staleAt: e.ExpiresAt,
		data: code(e.CodeSealed, func(c string) any { return mail.PasswordChangeCode{Code: c, Lifetime: life} })}, true
}

func emailChangeCode(e events.EmailChangeCodeIssued, _ events.Envelope, _ settings) (outgoing, bool) {
	life := e.ExpiresAt.Sub(e.IssuedAt)
	return outgoing{kind: mail.KindEmailChangeCode, toSealed: e.NewEmailSealed, staleAt: e.ExpiresAt,
		data: code(e.CodeSealed, func(c string) any { return mail.EmailChangeCode{Code: c, Lifetime: life} })}, true
}

func passwordReset(e events.PasswordResetRequested, _ events.Envelope, s settings) (outgoing, bool) {
	life := e.ExpiresAt.Sub(e.RequestedAt)
	return outgoing{kind: mail.KindPasswordReset, toSealed: e.ToSealed, staleAt: e.ExpiresAt,
		data: func(open opener) (any, error) {
			token, err := open(e.TokenSealed)
			if err != nil {
				return nil, fmt.Errorf("sealed token: %w", err)
			}
			return mail.PasswordReset{Link: resetLink(s, token), Lifetime: life}, nil
		}}, true
}

// resetLink is AUTH_PUBLIC_URL + the reset page + ?token=…
func resetLink(s settings, token string) string {
	return strings.TrimRight(s.publicURL, "/") + "/" + strings.TrimLeft(s.resetPath, "/") +
		"?" + url.Values{"token": {token}}.Encode()
}

// A notice tells of something done; it is not worth sending once old
// (a notifier started on a long history must not flood mailboxes).
func notice(kind mail.Kind, toSealed string, at time.Time, s settings, data any) outgoing {
	return outgoing{kind: kind, toSealed: toSealed, staleAt: at.Add(s.noticeMaxAge), data: value(data)}
}

func passwordChanged(e events.PasswordChanged, _ events.Envelope, s settings) (outgoing, bool) {
	if e.ToSealed == "" {
		return outgoing{}, false
	}
	return notice(mail.KindPasswordChanged, e.ToSealed, e.At, s, mail.PasswordChanged{At: e.At}), true
}

func emailChanged(e events.EmailChanged, _ events.Envelope, s settings) (outgoing, bool) {
	if e.OldToSealed == "" {
		return outgoing{}, false
	}
	return notice(mail.KindEmailChanged, e.OldToSealed, e.At, s,
		mail.EmailChanged{At: e.At, NewMaskedEmail: e.MaskedEmail}), true
}

// Lockout notices go out in profiles that set NoticeTo (strict), on the
// failure that blocks.
func passwordLockout(e events.PasswordFailed, _ events.Envelope, s settings) (outgoing, bool) {
	if e.NoticeTo == "" || e.BlockedUntil.IsZero() {
		return outgoing{}, false
	}
	return notice(mail.KindLockout, e.NoticeTo, e.At, s,
		mail.Lockout{Reason: mail.ReasonPasswordFailures, Failures: e.Failures, BlockedUntil: e.BlockedUntil}), true
}

func otpLockout(e events.OTPFailed, _ events.Envelope, s settings) (outgoing, bool) {
	if e.NoticeTo == "" || e.BlockedUntil.IsZero() {
		return outgoing{}, false
	}
	return notice(mail.KindLockout, e.NoticeTo, e.At, s,
		mail.Lockout{Reason: mail.ReasonOTPFailures, Failures: e.Failures, BlockedUntil: e.BlockedUntil}), true
}

func quotaLockout(e events.OTPQuotaExceeded, _ events.Envelope, s settings) (outgoing, bool) {
	if e.NoticeTo == "" {
		return outgoing{}, false
	}
	return notice(mail.KindLockout, e.NoticeTo, e.At, s,
		mail.Lockout{Reason: mail.ReasonOTPQuota, BlockedUntil: e.BlockedUntil}), true
}

func newTrustedDevice(e events.LoginSucceeded, env events.Envelope, s settings) (outgoing, bool) {
	if e.NoticeTo == "" || e.DeviceHash == "" {
		return outgoing{}, false
	}
	channel := e.Channel
	if channel == "" {
		channel = env.Channel
	}
	return notice(mail.KindNewTrustedDevice, e.NoticeTo, e.At, s, mail.NewTrustedDevice{
		At: e.At, TrustedUntil: e.DeviceExpiresAt, Channel: channel, Device: env.UserAgent}), true
}
