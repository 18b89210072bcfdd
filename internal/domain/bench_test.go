package domain_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// The decider's hot paths, one login's worth: Decide on each step, Evolve
// of its facts, the NIR parse of the login form and the Paris date of a
// block message. The state is a busy account (its bounds full: 10 sessions,
// 10 trusted devices, 5 pending logins, a few code requests), the worst a
// command meets.
//
//	go test -run '^$' -bench . -benchmem ./internal/domain/

// bt0 is a Thursday, 5 January 2023, 14:30 in Paris.
var bt0 = time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)

// busyAccount is an account with 20 past logins (and trusted devices),
// then a login started (password verified) and its code issued.
func busyAccount() domain.Account {
	a := domain.Account{ID: "01HZY0000000000000000BENCH"}
	at := bt0.Add(-24 * time.Hour)
	a = domain.Evolve(a, events.AccountRegistered{NIRHash: "nir#", EmailSealed: "sealed-mail", MaskedEmail: "v***@y***.fr",
		EmailValidated: true, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Affiliation: domain.AffiliationActive, At: at})
	for i := range 20 {
		at = at.Add(time.Hour)
		login := "L" + strconv.Itoa(i)
		a = domain.Evolve(a, events.PasswordVerified{LoginID: login, At: at})
		a = domain.Evolve(a, events.OTPIssued{LoginID: login, CodeHash: "code#" + login, CodeSealed: "sealed", ToSealed: "sealed-mail",
			RequestsLastHour: 1, IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)})
		a = domain.Evolve(a, events.LoginSucceeded{LoginID: login, Method: events.MethodOTP, Channel: "web",
			SessionHash: "sess#" + login, SessionExpiresAt: at.Add(30 * time.Minute),
			DeviceHash: "dev#" + login, DeviceExpiresAt: at.AddDate(0, 6, 0), At: at})
	}
	for i := range 4 { // pending logins left open, and their code requests
		at := bt0.Add(time.Duration(i-5) * time.Minute)
		a = domain.Evolve(a, events.PasswordVerified{LoginID: "open" + strconv.Itoa(i), At: at})
		a = domain.Evolve(a, events.OTPIssued{LoginID: "open" + strconv.Itoa(i), CodeHash: "old#", IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)})
	}
	a = domain.Evolve(a, events.PasswordVerified{LoginID: "LNOW", At: bt0})
	a = domain.Evolve(a, events.OTPIssued{LoginID: "LNOW", CodeHash: "code#now", CodeSealed: "sealed", ToSealed: "sealed-mail",
		RequestsLastHour: 5, IssuedAt: bt0, ExpiresAt: bt0.Add(15 * time.Minute)})
	return a
}

func decide(b *testing.B, a domain.Account, c domain.Command, wantType string) {
	b.Helper()
	d := domain.Decider{Policy: domain.SeedPolicy()}
	now := bt0.Add(time.Minute)
	evs, err := d.Decide(a, c, now)
	if len(evs) != 1 || evs[0].EventType() != wantType {
		b.Fatalf("Decide: %v, %v; want one %s", evs, err, wantType)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = d.Decide(a, c, now)
	}
}

func BenchmarkDecideSubmitPassword(b *testing.B) {
	decide(b, busyAccount(), domain.SubmitPassword{PasswordOK: true, LoginID: "LNEXT", SessionHash: "sess#next", Channel: "web"},
		events.TypePasswordVerified)
}

func BenchmarkDecideSubmitPasswordWrong(b *testing.B) {
	decide(b, busyAccount(), domain.SubmitPassword{PasswordOK: false, LoginID: "LNEXT", SessionHash: "sess#next", Channel: "web"},
		events.TypePasswordFailed)
}

func BenchmarkDecideSendOTP(b *testing.B) {
	a := busyAccount()
	a.OTPRequests = a.OTPRequests[len(a.OTPRequests)-2:] // within the quota
	decide(b, a, domain.SendOTP{LoginID: "LNOW", CodeHash: "code#new", CodeSealed: "sealed"}, events.TypeOTPIssued)
}

func BenchmarkDecideVerifyOTP(b *testing.B) {
	decide(b, busyAccount(), domain.VerifyOTP{LoginID: "LNOW", CodeHash: "code#now", SessionHash: "sess#next", Channel: "web"},
		events.TypeLoginSucceeded)
}

// BenchmarkEvolve folds one login's three facts into the busy account.
func BenchmarkEvolve(b *testing.B) {
	a := busyAccount()
	at := bt0.Add(time.Minute)
	facts := []events.Event{
		events.PasswordVerified{LoginID: "LNEXT", At: at},
		events.OTPIssued{LoginID: "LNEXT", CodeHash: "code#next", CodeSealed: "sealed", ToSealed: "sealed-mail", RequestsLastHour: 1,
			IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)},
		events.LoginSucceeded{LoginID: "LNEXT", Method: events.MethodOTP, Channel: "web", SessionHash: "sess#next",
			SessionExpiresAt: at.Add(30 * time.Minute), At: at},
	}
	b.ReportAllocs()
	for b.Loop() {
		s := a
		for _, e := range facts {
			s = domain.Evolve(s, e)
		}
	}
}

// BenchmarkReplayHistory folds a 1,000-event history from nothing: a cold
// load without a snapshot reads up to the snapshot interval (100).
func BenchmarkReplayHistory(b *testing.B) {
	var history []events.Event
	history = append(history, events.AccountRegistered{NIRHash: "nir#", EmailSealed: "s", MaskedEmail: "v***@y***.fr",
		EmailValidated: true, PasswordHash: "$argon2id$x", Affiliation: domain.AffiliationActive, At: bt0})
	for i := range 333 {
		at := bt0.Add(time.Duration(i) * time.Minute)
		login := "L" + strconv.Itoa(i)
		history = append(history,
			events.PasswordVerified{LoginID: login, At: at},
			events.OTPIssued{LoginID: login, CodeHash: "c", IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)},
			events.LoginSucceeded{LoginID: login, Method: events.MethodOTP, Channel: "web", SessionHash: "s" + login,
				SessionExpiresAt: at.Add(30 * time.Minute), At: at})
	}
	b.ReportAllocs()
	for b.Loop() {
		a := domain.Account{ID: "01HZY0000000000000000BENCH"}
		for _, e := range history {
			a = domain.Evolve(a, e)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(history)), "ns/event")
}

func BenchmarkParseNIR(b *testing.B) {
	corsica := "185052A123456"
	for _, c := range []struct{ name, in string }{
		{"13", "2690549588157"},
		{"15_spaced", "2 69 05 49 588 157 80"},
		{"15_corsica", fmt.Sprintf("%s%02d", corsica, domain.NIRKey(corsica))},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := domain.ParseNIR(c.in); err != nil {
				b.Fatalf("ParseNIR(%q): %v", c.in, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = domain.ParseNIR(c.in)
			}
		})
	}
}

func BenchmarkFormatLong(b *testing.B) {
	t := bt0.Add(17 * time.Minute)
	if got := domain.FormatLong(t); got != "jeudi 5 janvier 2023 14:47" {
		b.Fatalf("FormatLong = %q", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = domain.FormatLong(t)
	}
}
