// Package mail renders the service's emails (French, a text and an HTML
// part, from templates embedded in the binary) and delivers them over SMTP.
//
// The templates follow the seed's mails word for word where the seed has one
// (the security code, "password changed"); the others are written in the
// same voice. Render is pure: the notifier maps events to a Kind and its data.
package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"reflect"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// Kind names one email. Kinds are recorded with each sent mail
// (notifier.sent.kind) and appear in Message-IDs: never rename one.
type Kind string

// The emails.
const (
	KindLoginCode          Kind = "login_code"           // security code of a login (seed, Étape 2)
	KindPasswordChangeCode Kind = "password_change_code" // confirmation code of a password change
	KindPasswordChanged    Kind = "password_changed"     // "password changed" confirmation (seed)
	KindPasswordReset      Kind = "password_reset"       // forgotten password: the single-use link
	KindEmailChangeCode    Kind = "email_change_code"    // code sent to a new address, to prove it
	KindEmailChanged       Kind = "email_changed"        // the old address is told of the change
	KindLockout            Kind = "lockout"              // strict profile: the account was blocked
	KindNewTrustedDevice   Kind = "new_trusted_device"   // strict profile: "Se souvenir de cet appareil"
)

// LoginCode is the data of KindLoginCode.
type LoginCode struct {
	Code     string
	Lifetime time.Duration // "valable seulement 15 minutes"
}

// PasswordChangeCode is the data of KindPasswordChangeCode.
type PasswordChangeCode struct {
	Code     string
	Lifetime time.Duration
}

// PasswordChanged is the data of KindPasswordChanged.
type PasswordChanged struct {
	At time.Time // shown in Paris time, as the seed's mail
}

// PasswordReset is the data of KindPasswordReset.
type PasswordReset struct {
	Link     string // AUTH_PUBLIC_URL + the reset page, with the token query parameter
	Lifetime time.Duration
}

// EmailChangeCode is the data of KindEmailChangeCode.
type EmailChangeCode struct {
	Code     string
	Lifetime time.Duration
}

// EmailChanged is the data of KindEmailChanged.
type EmailChanged struct {
	At             time.Time
	NewMaskedEmail string // "v***@y***.fr": the old address learns where mail now goes, not the address
}

// Lockout reasons (the domain's block reasons).
const (
	ReasonPasswordFailures = "password_failures"
	ReasonOTPFailures      = "otp_failures"
	ReasonOTPQuota         = "otp_quota"
)

// Lockout is the data of KindLockout.
type Lockout struct {
	Reason       string // ReasonPasswordFailures, ReasonOTPFailures or ReasonOTPQuota
	Failures     int    // failures in a row that caused the block (not used for the quota)
	BlockedUntil time.Time
}

// NewTrustedDevice is the data of KindNewTrustedDevice.
type NewTrustedDevice struct {
	At           time.Time
	TrustedUntil time.Time
	Channel      string // web, app, kiosk
	Device       string // the browser's user agent, as the request told it; may be empty
}

// kinds lists every Kind with the Go type of its data.
var kinds = map[Kind]reflect.Type{
	KindLoginCode:          reflect.TypeFor[LoginCode](),
	KindPasswordChangeCode: reflect.TypeFor[PasswordChangeCode](),
	KindPasswordChanged:    reflect.TypeFor[PasswordChanged](),
	KindPasswordReset:      reflect.TypeFor[PasswordReset](),
	KindEmailChangeCode:    reflect.TypeFor[EmailChangeCode](),
	KindEmailChanged:       reflect.TypeFor[EmailChanged](),
	KindLockout:            reflect.TypeFor[Lockout](),
	KindNewTrustedDevice:   reflect.TypeFor[NewTrustedDevice](),
}

// Kinds returns every kind, for tests and documentation.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	return out
}

//go:embed templates
var templateFS embed.FS

type compiled struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

var templates = mustCompile()

var funcs = map[string]any{
	"long":     domain.FormatLong, // mercredi 4 janvier 2023 15:47
	"mailtime": domain.FormatMail, // vendredi 06 juin 2025 à 14:27
	"dash":     domain.FormatDash, // 05/01/2023 - 14h45
	"date":     domain.FormatDate, // 12/04/2024
	"duration": FrenchDuration,    // 15 minutes, 1 heure
	"channel":  channelName,       // le site ameli, l'appli ameli
	"truncate": truncate,          // a user agent can be long
}

func mustCompile() map[Kind]compiled {
	out := make(map[Kind]compiled, len(kinds))
	for k := range kinds {
		t, err := texttemplate.New("layout.txt.tmpl").Funcs(funcs).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.txt.tmpl", "templates/"+string(k)+".txt.tmpl")
		if err != nil {
			panic(fmt.Sprintf("mail: text template %s: %v", k, err))
		}
		h, err := htmltemplate.New("layout.html.tmpl").Funcs(funcs).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.html.tmpl", "templates/"+string(k)+".html.tmpl")
		if err != nil {
			panic(fmt.Sprintf("mail: html template %s: %v", k, err))
		}
		out[k] = compiled{text: t, html: h}
	}
	return out
}

// ErrData: the data given to Render does not fit the kind.
var ErrData = errors.New("mail: data does not fit the kind")

// Render returns the subject, the text part and the HTML part of one email.
// data is the kind's struct (LoginCode for KindLoginCode, …), by value.
func Render(kind Kind, data any) (subject, text, html string, err error) {
	want, ok := kinds[kind]
	if !ok {
		return "", "", "", fmt.Errorf("mail: unknown kind %q", kind)
	}
	if got := reflect.TypeOf(data); got != want {
		return "", "", "", fmt.Errorf("%w: %s wants a mail.%s, got %v", ErrData, kind, want.Name(), got)
	}
	if err := validate(data); err != nil {
		return "", "", "", fmt.Errorf("%w: %s: %v", ErrData, kind, err)
	}
	t := templates[kind]
	var sb, tb, hb bytes.Buffer
	if err := t.text.ExecuteTemplate(&sb, "subject", data); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s subject: %w", kind, err)
	}
	if err := t.text.ExecuteTemplate(&tb, "layout.txt.tmpl", data); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s text: %w", kind, err)
	}
	if err := t.html.ExecuteTemplate(&hb, "layout.html.tmpl", data); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s html: %w", kind, err)
	}
	return strings.TrimSpace(sb.String()), tb.String(), hb.String(), nil
}

// validate refuses data that would render a broken mail.
func validate(data any) error {
	code := func(c string) error {
		if len(c) < 4 || strings.Trim(c, "0123456789") != "" {
			return errors.New("the code must be at least 4 digits")
		}
		return nil
	}
	life := func(d time.Duration) error {
		if d < time.Minute {
			return errors.New("the lifetime must be at least a minute")
		}
		return nil
	}
	at := func(t time.Time) error {
		if t.IsZero() {
			return errors.New("a date is missing")
		}
		return nil
	}
	switch d := data.(type) {
	case LoginCode:
		return errors.Join(code(d.Code), life(d.Lifetime))
	case PasswordChangeCode:
		return errors.Join(code(d.Code), life(d.Lifetime))
	case EmailChangeCode:
		return errors.Join(code(d.Code), life(d.Lifetime))
	case PasswordChanged:
		return at(d.At)
	case PasswordReset:
		if !strings.HasPrefix(d.Link, "https://") && !strings.HasPrefix(d.Link, "http://") {
			return errors.New("the link must be an http(s) URL")
		}
		return life(d.Lifetime)
	case EmailChanged:
		return at(d.At)
	case Lockout:
		switch d.Reason {
		case ReasonPasswordFailures, ReasonOTPFailures, ReasonOTPQuota:
		default:
			return fmt.Errorf("unknown lockout reason %q", d.Reason)
		}
		return at(d.BlockedUntil)
	case NewTrustedDevice:
		return errors.Join(at(d.At), at(d.TrustedUntil))
	}
	return nil
}

// FrenchDuration writes a lifetime as the seed does: "15 minutes",
// "1 heure", "2 heures", "1 heure 30 minutes".
func FrenchDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	plural := func(n int, one, many string) string {
		if n > 1 {
			return fmt.Sprintf("%d %s", n, many)
		}
		return fmt.Sprintf("%d %s", n, one)
	}
	switch {
	case h == 0:
		return plural(m, "minute", "minutes")
	case m == 0:
		return plural(h, "heure", "heures")
	}
	return plural(h, "heure", "heures") + " " + plural(m, "minute", "minutes")
}

func channelName(c string) string {
	switch c {
	case "app":
		return "l'application ameli pour smartphone"
	case "kiosk":
		return "une borne multi-services (BMS)"
	case "backoffice":
		return "un conseiller de l'Assurance Maladie"
	}
	return "le site ameli"
}

func truncate(n int, s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
