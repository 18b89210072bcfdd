package domain

import (
	"fmt"
	"time"
)

// Policy holds every number of the rules Decide applies. The seed's profile
// is the default; the strict profile follows NIST SP 800-63B-4 and OWASP
// ASVS 5 where they are stricter. Nothing else in the code hard-codes a
// rule's number. The bounds on the state's size (MaxSessions and the others,
// account.go) are not rules a profile chooses but the state's shape, which
// Evolve applies the same everywhere; Validate checks the rules fit in them.
type Policy struct {
	Name string `json:"name"`

	// Login (seed: Étapes 0-3, Cas 2-7).
	OTPDigits           int           `json:"otp_digits"`
	OTPLifetime         time.Duration `json:"otp_lifetime"`
	LoginLifetime       time.Duration `json:"login_lifetime"` // how long a login_id can ask and check codes
	OTPQuota            int           `json:"otp_quota"`      // codes per rolling window
	OTPQuotaWindow      time.Duration `json:"otp_quota_window"`
	OTPQuotaBlock       time.Duration `json:"otp_quota_block"`
	PasswordMaxFailures int           `json:"password_max_failures"`
	PasswordBlock       time.Duration `json:"password_block"`
	// PasswordFailureMemory: a wrong password this long after the previous
	// one starts a new count. Our choice (issue 19): a NIR without an
	// account keeps its failures in a store whose entries must expire, and
	// a registered account must behave the same, or waiting out the expiry
	// between two attempts would tell them apart. 30 days.
	PasswordFailureMemory time.Duration `json:"password_failure_memory"`
	OTPMaxFailures        int           `json:"otp_max_failures"`
	OTPBlock              time.Duration `json:"otp_block"`
	TrustedDeviceMonths   int           `json:"trusted_device_months"`
	SessionLifetime       time.Duration `json:"session_lifetime"`

	// Password change (seed: "Changement de mot de passe" and its failure
	// cases), email change and forgotten password.
	ChangeCodeDigits              int           `json:"change_code_digits"`
	ChangeCodeLifetime            time.Duration `json:"change_code_lifetime"`
	ChangeCodeMaxRequests         int           `json:"change_code_max_requests"` // per window; one more blocks
	ChangeCodeWindow              time.Duration `json:"change_code_window"`
	ChangeRequestsBlock           time.Duration `json:"change_requests_block"`
	ChangeCodeMaxFailures         int           `json:"change_code_max_failures"`
	ChangeFailuresBlock           time.Duration `json:"change_failures_block"`
	EmailChangeCooldown           time.Duration `json:"email_change_cooldown"` // no password change this long after a new email
	ChangeRequiresCurrentPassword bool          `json:"change_requires_current_password"`
	ResetLinkLifetime             time.Duration `json:"reset_link_lifetime"`
	ResetMaxPerWindow             int           `json:"reset_max_per_window"` // links mailed per ChangeCodeWindow

	// Biometric login on the app (seed, "APPLI COMPTE AMELI").
	BiometricOfferFromLogin    int           `json:"biometric_offer_from_login"` // the nth successful app login offers it
	BiometricMonths            int           `json:"biometric_months"`
	BiometricChallengeLifetime time.Duration `json:"biometric_challenge_lifetime"`
	BiometricChallengesPerHour int           `json:"biometric_challenges_per_hour"` // per device

	// Notices (strict profile): a mail on every lockout and new trusted device.
	NotifyLockout          bool `json:"notify_lockout"`
	NotifyNewTrustedDevice bool `json:"notify_new_trusted_device"`

	// Password hashing (argon2id), and the ceilings on the cost of a hash
	// that comes from outside (an import, a stored hash).
	Argon2     Argon2Params `json:"argon2"`
	HashLimits HashLimits   `json:"hash_limits"`

	// Password spraying by source (issue 20, source.go): failed password
	// attempts from one client address (SourceIP) and from its /24 or /64
	// (SourcePrefix), across every account, each in its own window.
	SourceIP     SourceBudget `json:"source_ip"`
	SourcePrefix SourceBudget `json:"source_prefix"`

	// Password quality.
	PasswordMinLength int `json:"password_min_length"`
	PasswordMaxLength int `json:"password_max_length"`
	PasswordMinScore  int `json:"password_min_score"` // zxcvbn score, 0 to 4
}

// Argon2Params are argon2id's cost parameters. Memory is in KiB.
type Argon2Params struct {
	Memory  uint32 `json:"memory_kib"`
	Time    uint32 `json:"time"`
	Threads uint8  `json:"threads"`
	KeyLen  uint32 `json:"key_len"`
	SaltLen uint32 `json:"salt_len"`
}

// HashLimits bound what verifying one stored password hash may cost. A
// hash arrives from outside (account.import, an import file, or whoever can
// write the stream), and argon2id and bcrypt take their cost from the hash
// itself: without a ceiling, one imported `m=1048576` hash makes every login
// on that NIR allocate 1 GiB (issue 11, kind 3). A hash over a ceiling is
// refused at import and, if stored anyway, never computed. Our numbers: a
// bit over 3x OWASP's strongest argon2id line (46 MiB), bcrypt's cost 14
// (about 1 s on this machine's cores, 16x OWASP's minimum of 10).
type HashLimits struct {
	Argon2MaxMemoryKiB uint32 `json:"argon2_max_memory_kib"`
	Argon2MaxTime      uint32 `json:"argon2_max_time"`
	Argon2MaxThreads   uint8  `json:"argon2_max_threads"`
	Argon2MaxKeyLen    uint32 `json:"argon2_max_key_len"` // bytes
	Argon2MaxSaltLen   uint32 `json:"argon2_max_salt_len"`
	BcryptMaxCost      int    `json:"bcrypt_max_cost"`
}

// DefaultHashLimits: m <= 64 MiB, t <= 10, p <= 4, key and salt <= 64
// bytes, bcrypt cost <= 14.
func DefaultHashLimits() HashLimits {
	return HashLimits{Argon2MaxMemoryKiB: 64 * 1024, Argon2MaxTime: 10, Argon2MaxThreads: 4,
		Argon2MaxKeyLen: 64, Argon2MaxSaltLen: 64, BcryptMaxCost: 14}
}

// SeedPolicy is the ameli guide's profile (the default).
func SeedPolicy() Policy {
	return Policy{
		Name:                  "seed",
		OTPDigits:             6,
		OTPLifetime:           15 * time.Minute,
		LoginLifetime:         time.Hour,
		OTPQuota:              5,
		OTPQuotaWindow:        time.Hour,
		OTPQuotaBlock:         time.Hour,
		PasswordMaxFailures:   3,
		PasswordBlock:         15 * time.Minute,
		PasswordFailureMemory: 30 * 24 * time.Hour,
		OTPMaxFailures:        3,
		OTPBlock:              15 * time.Minute,
		TrustedDeviceMonths:   6,
		SessionLifetime:       30 * time.Minute,

		ChangeCodeDigits:      4,
		ChangeCodeLifetime:    15 * time.Minute,
		ChangeCodeMaxRequests: 3,
		ChangeCodeWindow:      time.Hour,
		ChangeRequestsBlock:   time.Hour,
		ChangeCodeMaxFailures: 3,
		ChangeFailuresBlock:   15 * time.Minute,
		EmailChangeCooldown:   48 * time.Hour,
		ResetLinkLifetime:     time.Hour,
		ResetMaxPerWindow:     3,

		BiometricOfferFromLogin:    2,
		BiometricMonths:            6,
		BiometricChallengeLifetime: 2 * time.Minute,
		BiometricChallengesPerHour: 20,

		// Our choice (docs/rules.md, "Password spraying"): 100 failures a
		// day from one address is NIST SP 800-63B's ceiling for one
		// account, far above what a person or a household fails; a /24 or
		// /64 (one NAT pool, one operator's customers) gets ten times it.
		SourceIP:     SourceBudget{Failures: 100, Window: 24 * time.Hour},
		SourcePrefix: SourceBudget{Failures: 1000, Window: 24 * time.Hour},

		// OWASP's first argon2id line: 19 MiB, 2 passes, 1 lane.
		Argon2:            Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16},
		HashLimits:        DefaultHashLimits(),
		PasswordMinLength: 8,
		PasswordMaxLength: 128,
		PasswordMinScore:  2, // 10^8 guesses: beyond online guessing and every common list
	}
}

// StrictPolicy is the NIST SP 800-63B-4 / OWASP ASVS 5 profile: codes live
// at most 10 minutes, every lockout and new trusted device is mailed.
func StrictPolicy() Policy {
	p := SeedPolicy()
	p.Name = "strict"
	p.OTPLifetime = 10 * time.Minute
	p.ChangeCodeDigits = 6
	p.ChangeCodeLifetime = 10 * time.Minute
	p.ChangeRequiresCurrentPassword = true
	p.NotifyLockout = true
	p.NotifyNewTrustedDevice = true
	// OWASP's 46 MiB, 1 pass line: as strong, more memory-hard.
	p.Argon2 = Argon2Params{Memory: 46 * 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	p.PasswordMinLength = 12
	p.PasswordMinScore = 3
	return p
}

// Validate checks that the policy's quotas can be counted: a rolling quota
// of n needs the n latest request times, and the state keeps
// MaxRecentRequests of them.
func (p Policy) Validate() error {
	for _, q := range []struct {
		name string
		n    int
	}{
		{"otp_quota", p.OTPQuota},
		{"change_code_max_requests", p.ChangeCodeMaxRequests},
		{"reset_max_per_window", p.ResetMaxPerWindow},
		{"biometric_challenges_per_hour", p.BiometricChallengesPerHour},
	} {
		if q.n < 1 || q.n > MaxRecentRequests {
			return fmt.Errorf("policy %s: %s = %d, want 1 to %d (the request times a state keeps)", p.Name, q.name, q.n, MaxRecentRequests)
		}
	}
	for name, b := range map[string]SourceBudget{"source_ip": p.SourceIP, "source_prefix": p.SourcePrefix} {
		if b.Failures < 0 || b.Failures > 0 && (b.Window <= 0 || b.Window > MaxSourceWindow) {
			return fmt.Errorf("policy %s: %s = %d failures in %s, want 0 (off) or a positive number in a window of at most %s", p.Name, name, b.Failures, b.Window, MaxSourceWindow)
		}
	}
	return nil
}

// AttemptsMemory is the longest time a rule looks back at a login attempt
// (events.IsAttempt): the trusted devices' months (a login that trusted a
// device, counted as 31-day months), the password failures' memory, and
// the windows, lifetimes and blocks of codes, logins, sessions and
// challenges. The attempts' retention must not be shorter (config checks
// AUTH_ATTEMPTS_RETENTION against it): then even an account replayed
// without its snapshot decides as before, but for the counters a success
// or an adviser clears (docs/retention.md).
func (p Policy) AttemptsMemory() time.Duration {
	m := time.Duration(p.TrustedDeviceMonths) * 31 * 24 * time.Hour
	for _, d := range []time.Duration{p.PasswordFailureMemory, p.PasswordBlock, p.OTPLifetime, p.LoginLifetime,
		p.OTPQuotaWindow, p.OTPQuotaBlock, p.OTPBlock, p.SessionLifetime, p.BiometricChallengeLifetime, time.Hour} {
		m = max(m, d)
	}
	return m
}

// PolicyByName returns the named profile.
func PolicyByName(name string) (Policy, bool) {
	switch name {
	case "", "seed":
		return SeedPolicy(), true
	case "strict":
		return StrictPolicy(), true
	}
	return Policy{}, false
}
