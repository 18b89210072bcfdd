package histcheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

var t0 = time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)

const acc = "ACC1"

// hist builds a hand-made account history; each event's causation is a
// fresh request id ("r1", "r2"...).
type hist struct {
	envs []events.Envelope
}

func (h *hist) add(at time.Time, e events.Event) *hist {
	n := len(h.envs) + 1
	h.envs = append(h.envs, events.Envelope{ID: fmt.Sprintf("e%d", n), Type: e.EventType(), Version: 1, AccountID: acc,
		OccurredAt: at, CausationID: fmt.Sprintf("r%d", n), Data: e})
	return h
}

func m(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

func (h *hist) reg(at time.Time) *hist {
	return h.add(at, events.AccountRegistered{NIRHash: "n", EmailSealed: "s", MaskedEmail: "v***@y***.fr", EmailValidated: true,
		PasswordHash: "h", Affiliation: domain.AffiliationActive, At: at})
}

func (h *hist) pwFail(at time.Time, n int, block bool) *hist {
	e := events.PasswordFailed{Failures: n, At: at}
	if block {
		e.BlockedUntil = at.Add(15 * time.Minute)
	}
	return h.add(at, e)
}

func (h *hist) pwOK(at time.Time, login string) *hist {
	return h.add(at, events.PasswordVerified{LoginID: login, At: at})
}

func (h *hist) otp(at time.Time, login string, n int) *hist {
	return h.add(at, events.OTPIssued{LoginID: login, CodeHash: "c" + login, RequestsLastHour: n, IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)})
}

func (h *hist) otpFail(at time.Time, login string, n int, block bool) *hist {
	e := events.OTPFailed{LoginID: login, Failures: n, At: at}
	if block {
		e.BlockedUntil = at.Add(15 * time.Minute)
	}
	return h.add(at, e)
}

func (h *hist) success(at time.Time, login, session string) *hist {
	return h.add(at, events.LoginSucceeded{LoginID: login, Method: events.MethodOTP, Channel: "web", SessionHash: session,
		SessionExpiresAt: at.Add(30 * time.Minute), At: at})
}

// login: password, code, session.
func (h *hist) login(at time.Time, login, session string) *hist {
	return h.pwOK(at, login).otp(at, login, 1).success(at, login, session)
}

func (h *hist) changeCode(at time.Time, n int) *hist {
	return h.add(at, events.PasswordChangeCodeIssued{CodeHash: "pc", RequestsLastHour: n, IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)})
}

func (h *hist) emailCode(at time.Time, n int) *hist {
	return h.add(at, events.EmailChangeCodeIssued{NewEmailSealed: "n", NewMaskedEmail: "n***@e***.fr", CodeHash: "ec", RequestsLastHour: n,
		IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)})
}

func (h *hist) resetLink(at time.Time, token string) *hist {
	return h.add(at, events.PasswordResetRequested{TokenHash: token, RequestedAt: at, ExpiresAt: at.Add(time.Hour)})
}

func rules(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Rule)
	}
	return out
}

// good is a history that keeps every rule: logins with failures, blocks
// waited out, both change flows, a reset, biometrics.
func good() *hist {
	h := &hist{}
	h.reg(m(0)).
		pwFail(m(1), 1, false).pwFail(m(1), 2, false).pwFail(m(2), 3, true). // blocked until m(17)
		pwOK(m(17), "L1").otp(m(17), "L1", 1).otpFail(m(18), "L1", 1, false).otp(m(19), "L1", 2).
		add(m(19), events.OTPFailed{LoginID: "L1", Failures: 2, At: m(19)}).
		success(m(20), "L1", "S1").
		changeCode(m(21), 1).add(m(21), events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 1, At: m(21)}).
		add(m(22), events.ChangeCodeVerified{SessionHash: "S1", At: m(22)}).
		add(m(23), events.PasswordChanged{Method: events.MethodChange, PasswordHash: "h2", KeptSessionHash: "S1", At: m(23)}).
		add(m(24), events.SessionEnded{SessionHash: "S1", Reason: "logout", At: m(24)}).
		resetLink(m(25), "T1").
		add(m(26), events.PasswordChanged{Method: events.MethodReset, PasswordHash: "h3", At: m(26)}).
		login(m(30), "L2", "S2").
		emailCode(m(31), 1).
		add(m(32), events.EmailChanged{EmailSealed: "n", MaskedEmail: "n***@e***.fr", KeptSessionHash: "S2", At: m(32)}).
		login(m(32+48*60), "L3", "S3").
		changeCode(m(32+48*60), 1).
		add(m(33+48*60), events.BiometricEnrolled{DeviceID: "P1", PublicKey: "k", ExpiresAt: m(33+48*60).AddDate(0, 6, 0), At: m(33 + 48*60)}).
		add(m(34+48*60), events.BiometricChallengeIssued{DeviceID: "P1", ChallengeHash: "ch", ExpiresAt: m(34 + 48*60).Add(2 * time.Minute), At: m(34 + 48*60)}).
		add(m(35+48*60), events.LoginSucceeded{Method: events.MethodBiometric, Channel: "app", BiometricDevice: "P1", SessionHash: "S4",
			SessionExpiresAt: m(35 + 48*60).Add(30 * time.Minute), At: m(35 + 48*60)}).
		pwFail(m(36+48*60), 1, false).
		add(m(37+48*60), events.AccountUnlocked{At: m(37 + 48*60)}).
		add(m(38+48*60), events.AccountDeactivated{At: m(38 + 48*60)}).
		add(m(39+48*60), events.LoginRefused{Reason: domain.CodeAccountDeactivated, At: m(39 + 48*60)}).
		add(m(40+48*60), events.AccountReactivated{EmailSealed: "s", MaskedEmail: "v***@y***.fr", EmailValidated: true, PasswordHash: "h4",
			Affiliation: domain.AffiliationActive, At: m(40 + 48*60)})
	return h
}

func TestAGoodHistoryKeepsEveryRule(t *testing.T) {
	if vs := CheckHistory(domain.SeedPolicy(), good().envs); len(vs) != 0 {
		t.Fatalf("violations in a good history: %v", vs)
	}
}

// Each predicate catches its violation: a history that breaks one rule.
func TestEachRuleCatchesItsViolation(t *testing.T) {
	base := func() *hist { return (&hist{}).reg(m(0)) }
	cases := map[string]*hist{
		"time.order":        base().pwFail(m(5), 1, false).pwFail(m(4), 2, false),
		"account.lifecycle": base().reg(m(1)),
		// A 4th failure inside the block of the 3rd.
		"login.no-attempt-during-block": base().pwFail(m(1), 1, false).pwFail(m(1), 2, false).pwFail(m(1), 3, true).pwFail(m(2), 1, false),
		// The 3rd failure in a row without its block.
		"login.password-lockout": base().pwFail(m(1), 1, false).pwFail(m(1), 2, false).pwFail(m(1), 3, false),
		"login.otp-lockout":      base().pwOK(m(1), "L").otp(m(1), "L", 1).otpFail(m(2), "L", 1, false).otpFail(m(2), "L", 2, false).otpFail(m(2), "L", 3, false),
		// A 6th code in a rolling hour.
		"login.otp-quota":  base().pwOK(m(1), "L").otp(m(1), "L", 1).otp(m(2), "L", 2).otp(m(3), "L", 3).otp(m(4), "L", 4).otp(m(5), "L", 5).otp(m(60), "L", 6),
		"login.open-login": base().otp(m(1), "nobody", 1),
		// The code is used at exactly 15:00 after it was issued.
		"login.code-valid": base().pwOK(m(1), "L").otp(m(1), "L", 1).success(m(16), "L", "S"),
		// Two sessions from one login_id.
		"login.single-use":     base().login(m(1), "L", "S").success(m(2), "L", "S2"),
		"login.refusal-reason": base().add(m(1), events.LoginRefused{Reason: domain.CodeAccountDeactivated, At: m(1)}),
		"session.lifetime": base().pwOK(m(1), "L").otp(m(1), "L", 1).add(m(2), events.LoginSucceeded{LoginID: "L", Method: events.MethodOTP,
			SessionHash: "S", SessionExpiresAt: m(2).Add(31 * time.Minute), At: m(2)}),
		// Logging out a session at its 30th minute: it had ended.
		"session.in-use": base().login(m(1), "L", "S").add(m(31), events.SessionEnded{SessionHash: "S", Reason: "logout", At: m(31)}),
		// A password change without a verified code.
		"change.verified-code": base().login(m(1), "L", "S").changeCode(m(2), 1).
			add(m(3), events.PasswordChanged{Method: events.MethodChange, PasswordHash: "x", KeptSessionHash: "S", At: m(3)}),
		// A password-change code 47 h 59 after a new address.
		"change.email-cooldown": base().login(m(1), "L", "S").emailCode(m(2), 1).
			add(m(3), events.EmailChanged{EmailSealed: "n", KeptSessionHash: "S", At: m(3)}).
			login(m(3+47*60+50), "L2", "S2").changeCode(m(3+47*60+59), 1),
		// A 4th password-change code in the hour.
		"change.code-quota": base().login(m(1), "L", "S").changeCode(m(2), 1).changeCode(m(3), 2).changeCode(m(4), 3).changeCode(m(5), 4),
		// The 3rd wrong change code without its block.
		"change.code-lockout": base().login(m(1), "L", "S").changeCode(m(2), 1).
			add(m(3), events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 1, At: m(3)}).
			add(m(3), events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 2, At: m(3)}).
			add(m(3), events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 3, At: m(3)}),
		// One reset link used twice.
		"reset.link": base().resetLink(m(1), "T").
			add(m(2), events.PasswordChanged{Method: events.MethodReset, PasswordHash: "x", At: m(2)}).
			add(m(3), events.PasswordChanged{Method: events.MethodReset, PasswordHash: "y", At: m(3)}),
		"unlock.something": base().add(m(1), events.AccountUnlocked{At: m(1)}),
		"biometric.login": base().add(m(1), events.LoginSucceeded{Method: events.MethodBiometric, Channel: "app", BiometricDevice: "P",
			SessionHash: "S", SessionExpiresAt: m(31), At: m(1)}),
	}
	for _, r := range Rules {
		if _, ok := cases[r.ID]; !ok {
			t.Errorf("rule %s has no case that breaks it", r.ID)
		}
	}
	for id, h := range cases {
		t.Run(id, func(t *testing.T) {
			got := rules(CheckHistory(domain.SeedPolicy(), h.envs))
			if !slices.Contains(got, id) {
				t.Fatalf("rule %s not caught; got %v", id, got)
			}
		})
	}
}

// More boundaries: what the rules allow.
func TestRulesAllowTheirBoundaries(t *testing.T) {
	base := func() *hist { return (&hist{}).reg(m(0)) }
	cases := map[string]*hist{
		// A block ends at exactly its blocked_until.
		"block ends": base().pwFail(m(1), 1, false).pwFail(m(1), 2, false).pwFail(m(1), 3, true).pwFail(m(16), 1, false),
		// A code is accepted at 14:59.
		"code at 14:59": base().pwOK(m(1), "L").otp(m(1), "L", 1).add(m(1).Add(14*time.Minute+59*time.Second),
			events.LoginSucceeded{LoginID: "L", Method: events.MethodOTP, SessionHash: "S", SessionExpiresAt: m(1).Add(44*time.Minute + 59*time.Second),
				At: m(1).Add(14*time.Minute + 59*time.Second)}),
		// A request leaves the window exactly 1 hour after it.
		"quota window": base().pwOK(m(1), "L").otp(m(1), "L", 1).otp(m(2), "L", 2).otp(m(3), "L", 3).otp(m(4), "L", 4).otp(m(5), "L", 5).
			pwOK(m(61), "L2").otp(m(61), "L2", 5),
		// 30 days after the previous failure, the count starts again.
		"failure memory": base().pwFail(m(1), 1, false).pwFail(m(2), 2, false).pwFail(m(2+30*24*60), 1, false),
		// 48 h after a new address, the change is allowed.
		"cooldown ends": base().login(m(1), "L", "S").emailCode(m(2), 1).
			add(m(3), events.EmailChanged{EmailSealed: "n", KeptSessionHash: "S", At: m(3)}).
			login(m(3+47*60+50), "L2", "S2").changeCode(m(3+48*60), 1),
	}
	for name, h := range cases {
		if vs := CheckHistory(domain.SeedPolicy(), h.envs); len(vs) != 0 {
			t.Errorf("%s: %v", name, vs)
		}
	}
}

func reply(status string) *contract.AnyReply { return &contract.AnyReply{OK: true, Status: status} }

func refusal(code string) *contract.AnyReply {
	return &contract.AnyReply{Error: &contract.ErrorBody{Code: code}}
}

func op(cmd, id string, rep *contract.AnyReply) Op {
	return Op{Command: cmd, RequestID: id, Account: acc, Clock: m(1), Reply: rep}
}

// The acknowledgement predicates: each catches its violation, and accepts
// either outcome of an unknown one.
func TestAcknowledgements(t *testing.T) {
	locked := refusal(domain.CodeAccountLocked)
	until := m(16)
	locked.Error.BlockedUntil = &until
	lockedOther := refusal(domain.CodeAccountLocked)
	other := m(40)
	lockedOther.Error.BlockedUntil = &other
	// r1 registered, r2 a wrong password.
	h := func() *hist { return (&hist{}).reg(m(0)).pwFail(m(1), 1, false) }
	regOp := Op{Command: contract.CmdAccountRegister, RequestID: "r1", Clock: m(0), Reply: &contract.AnyReply{OK: true, Status: contract.StatusRegistered, AccountID: acc}}
	cases := []struct {
		name string
		h    *hist
		ops  []Op
		want string // "" for none
	}{
		{"acknowledged", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials))}, ""},
		{"acknowledged without its event", (&hist{}).reg(m(0)), []Op{regOp, op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials))}, "ack.event"},
		{"acknowledged as another fact", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", reply(contract.StatusOTPRequired))}, "ack.event"},
		{"a refusal that recorded", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", refusal(domain.CodeLoginExpired))}, "ack.phantom"},
		{"unknown outcome, recorded", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", nil)}, ""},
		{"unknown outcome, unavailable", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", refusal(domain.CodeUnavailable))}, ""},
		{"unknown outcome, not recorded", (&hist{}).reg(m(0)), []Op{regOp, op(contract.CmdLoginPassword, "r2", nil)}, ""},
		{"unknown outcome, another command's fact", h(), []Op{regOp, op(contract.CmdLoginOTPSend, "r2", nil)}, "ack.phantom"},
		{"retry: unknown first, then acknowledged", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", nil),
			func() Op {
				o := op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials))
				o.Try = 1
				return o
			}()}, ""},
		{"retry: acknowledged first, then told nothing was recorded", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials)),
			func() Op {
				o := op(contract.CmdLoginPassword, "r2", refusal(domain.CodeLoginExpired))
				o.Try = 1
				return o
			}()}, "ack.phantom"},
		{"one request, two facts", h().pwFail(m(1), 2, false), []Op{regOp, op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials)),
			op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials))}, "ack.requested"},
		{"an event no request asked", h(), []Op{regOp}, "ack.requested"},
		{"a block no event recorded", h(), []Op{regOp, op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials)),
			op(contract.CmdLoginPassword, "r3", lockedOther)}, "ack.block-in-force"},
		{"a block cited after an unlock", (&hist{}).reg(m(0)).pwFail(m(1), 3, true).add(m(2), events.AccountUnlocked{At: m(2)}),
			[]Op{regOp, op(contract.CmdLoginPassword, "r2", locked), op(contract.CmdAccountUnlock, "r3", reply(contract.StatusUnlocked)),
				func() Op { o := op(contract.CmdLoginPassword, "r4", locked); o.Clock = m(3); return o }()}, "ack.block-in-force"},
		{"a fact on another account", h(), []Op{regOp, func() Op {
			o := op(contract.CmdLoginPassword, "r2", refusal(domain.CodeInvalidCredentials))
			o.Account = "ACC2"
			return o
		}()}, "ack.account"},
		{"a code check acknowledged as a password failure", h(), []Op{regOp, op(contract.CmdLoginOTPVerify, "r2", refusal(domain.CodeOTPInvalid))}, "ack.event"},
	}
	// The two-facts case must name ack.one-fact: give r2's second fact r2.
	cases[10].h.envs[2].CausationID = "r2"
	cases[10].want = "ack.one-fact"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := Check(domain.SeedPolicy(), c.ops, map[string][]events.Envelope{acc: c.h.envs})
			var acks []string
			for _, v := range rep.Violations {
				if strings.HasPrefix(v.Rule, "ack.") {
					acks = append(acks, v.String())
				}
			}
			if c.want == "" && len(acks) != 0 {
				t.Fatalf("want no violation, got %v", acks)
			}
			if c.want != "" && !slices.ContainsFunc(rep.Violations, func(v Violation) bool { return v.Rule == c.want }) {
				t.Fatalf("want %s, got %v", c.want, acks)
			}
		})
	}
}

// A reply that accepted a session closed in an earlier round, and a reply
// whose session is not the one recorded.
func TestSessionReplies(t *testing.T) {
	h := (&hist{}).reg(m(0)).login(m(1), "L", "S").add(m(2), events.SessionEnded{SessionHash: "S", Reason: "logout", At: m(2)})
	regOp := Op{Command: contract.CmdAccountRegister, RequestID: "r1", Clock: m(0), Reply: &contract.AnyReply{OK: true, Status: contract.StatusRegistered, AccountID: acc}}
	base := []Op{regOp,
		{Command: contract.CmdLoginPassword, RequestID: "r2", Account: acc, Clock: m(1), Reply: reply(contract.StatusOTPRequired)},
		{Command: contract.CmdLoginOTPSend, RequestID: "r3", Account: acc, Clock: m(1), Reply: reply(contract.StatusOTPSent)},
		{Command: contract.CmdLoginOTPVerify, RequestID: "r4", Account: acc, Clock: m(1), Reply: reply(contract.StatusAuthenticated), ReplySession: "S"},
		{Command: contract.CmdSessionLogout, RequestID: "r5", Account: acc, Clock: m(2), Session: "S", Reply: reply(contract.StatusLoggedOut)},
	}
	base[2].Reply.ExpiresAt = func() *time.Time { x := m(16); return &x }()
	cases := []struct {
		name string
		ops  []Op
		want string
	}{
		{"a consistent history", base, ""},
		{"a session used in the round it ended", append(slices.Clone(base),
			Op{Command: contract.CmdSessionCheck, RequestID: "r6", Account: acc, Clock: m(2), Session: "S", Reply: reply(contract.StatusSessionValid)}), ""},
		{"a session used after its logout", append(slices.Clone(base),
			Op{Command: contract.CmdSessionCheck, RequestID: "r6", Account: acc, Clock: m(3), Session: "S", Reply: reply(contract.StatusSessionValid)}), "reply.session-open"},
		{"another session than the recorded one", func() []Op {
			ops := slices.Clone(base)
			ops[3].ReplySession = "X"
			return ops
		}(), "ack.event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := Check(domain.SeedPolicy(), c.ops, map[string][]events.Envelope{acc: h.envs})
			if c.want == "" && len(rep.Violations) != 0 {
				t.Fatalf("want no violation, got %v", rep.Violations)
			}
			if c.want != "" && !slices.ContainsFunc(rep.Violations, func(v Violation) bool { return v.Rule == c.want }) {
				t.Fatalf("want %s, got %v", c.want, rep.Violations)
			}
		})
	}
}
