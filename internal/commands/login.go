package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

const maxPasswordBytes = 1024 // longer input is refused before hashing (argon2 cost grows with it)

type loginPasswordRequest struct {
	Common
	NIR         string `json:"nir"`
	Password    string `json:"password"`
	DeviceToken string `json:"device_token,omitempty"`
	DeviceID    string `json:"device_id,omitempty"` // app: its biometric device id, so an enrolled device is not offered biometrics again
}

type otpSendRequest struct {
	Common
	LoginID string `json:"login_id"`
}

type otpVerifyRequest struct {
	Common
	LoginID        string `json:"login_id"`
	Code           string `json:"code"`
	RememberDevice bool   `json:"remember_device,omitempty"`
	DeviceID       string `json:"device_id,omitempty"` // app: as in login.password
}

type sessionRequest struct {
	Common
	Session string `json:"session"`
}

func (s *Service) loginPassword(ctx context.Context, data []byte) Reply {
	start := time.Now()
	var req loginPasswordRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	nir, err := nirField("nir", req.NIR)
	if err != nil {
		return errorReply(err)
	}
	if err := required("password", req.Password, maxPasswordBytes); err != nil {
		return errorReply(err)
	}
	if len(req.DeviceToken) > 256 {
		return errorReply(domain.InvalidRequest("device_token", "doit faire au plus 256 octets"))
	}
	defer s.floor(ctx, start)
	now := s.clock.Now()
	nirKey := s.keys.NIRIndexKey(nir)
	accountID, err := s.lookupNIR(ctx, nir)
	if errors.Is(err, eventstore.ErrNotFound) {
		// The reply must not tell whether the NIR has an account: it goes
		// through the same rules as an account (a shadow account, issue
		// 19) with the same work: one check at a time per NIR, a real
		// argon2id check unless blocked, the state written back.
		s.log.Info("login attempt on an unknown NIR", "channel", req.Channel, "client_ip", req.ClientIP)
		if !s.peekShadow(ctx, nirKey).state.account().Blocked(now) {
			release, err := s.gate.acquire(ctx, "nir:"+nirKey)
			if err != nil {
				return s.fail("login.password", err)
			}
			defer release()
			stillNeeded := func() bool { return !s.peekShadow(ctx, nirKey).state.account().Blocked(now) }
			if _, _, err := s.verifyPassword(ctx, "nir:"+nirKey, stillNeeded, req.Password, s.dummyPHC); err != nil && !errors.Is(err, errHashSkipped) {
				return s.fail("login.password", err)
			}
		}
		if err := s.shadowDecide(ctx, nirKey, now, domain.SubmitPassword{Channel: req.Channel}); err != nil {
			return errorReplyFor(req.Channel, err)
		}
		return s.fail("login.password", errors.New("shadow account accepted a password"))
	}
	if err != nil {
		return s.fail("login.password", err)
	}
	// One password check at a time per account, held until its outcome is
	// recorded: each attempt sees the failures and the block recorded
	// before it, so a flood spends the hashes that reach the block and no
	// more, and holds one hashing worker at most (issue 11, kind 4). An
	// attempt on an account known blocked needs no check and does not
	// queue: the decision (checked against the stream) refuses it.
	peek, peekErr := s.accounts.load(ctx, accountID)
	if peekErr != nil || !peek.state.Blocked(now) {
		release, err := s.gate.acquire(ctx, accountID)
		if err != nil {
			return s.fail("login.password", err)
		}
		defer release()
		peek, peekErr = s.accounts.load(ctx, accountID)
	}

	// Hash outside the account's lock so both cores work on parallel
	// attempts on different accounts; the decision itself is serialised
	// and checked by the append.
	var checkedHash string
	var passwordOK, rehash bool
	check := func(a domain.Account, stillNeeded func() bool) error {
		if checkedHash == a.PasswordHash && checkedHash != "" {
			return nil
		}
		ok, re, err := s.verifyPassword(ctx, accountID, stillNeeded, req.Password, a.PasswordHash)
		if errors.Is(err, errHashSkipped) {
			return nil // blocked meanwhile: the decision refuses without it
		}
		if err != nil {
			return fmt.Errorf("verify password of %s: %w", accountID, err)
		}
		checkedHash, passwordOK, rehash = a.PasswordHash, ok, re
		return nil
	}
	// A block known here is told without hashing, checked again once a
	// hashing worker is free (another request may have recorded it).
	if peekErr == nil && peek.state.Exists() && !peek.state.Blocked(now) {
		stillNeeded := func() bool {
			c, ok := s.accounts.cache.get(accountID)
			return !ok || !c.state.Blocked(now)
		}
		if err := check(peek.state, stillNeeded); err != nil {
			return s.fail("login.password", err)
		}
	}

	loginID := events.NewID(now)
	sessionToken := accountID + "." + secrets.NewToken()
	deviceHash := ""
	if req.DeviceToken != "" {
		deviceHash = s.keys.TokenHash("device:"+accountID, req.DeviceToken)
	}
	var newHash string
	out, err := s.decide(ctx, "login.password", accountID, now, &req.Common, func(a domain.Account) (domain.Command, error) {
		if !a.Exists() || a.Blocked(now) {
			return domain.SubmitPassword{}, nil // refused whatever the password
		}
		if err := check(a, nil); err != nil {
			return nil, err
		}
		if passwordOK && rehash && newHash == "" {
			if newHash, err = s.hashPassword(ctx, accountID, req.Password); err != nil {
				return nil, err
			}
		}
		cmd := domain.SubmitPassword{PasswordOK: passwordOK, DeviceHash: deviceHash, LoginID: loginID,
			SessionHash: s.keys.TokenHash("session", sessionToken), Channel: req.Channel}
		if passwordOK && rehash {
			cmd.NewPasswordHash = newHash
		}
		return cmd, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	for _, e := range out.recorded {
		switch e := e.(type) {
		case events.PasswordVerified:
			rep := ok("otp_required")
			rep.LoginID = s.keys.Seal(accountID+"|"+e.LoginID, "login")
			rep.MaskedEmail = out.state.MaskedEmail
			return rep
		case events.LoginSucceeded:
			if out.duplicate {
				return s.replayedSecret("login.password")
			}
			return s.authenticated(accountID, req.Channel, sessionToken, e, "", req.DeviceID, out.state)
		}
	}
	if out.duplicate {
		return s.replayedSecret("login.password")
	}
	return s.fail("login.password", fmt.Errorf("login of %s recorded nothing", accountID))
}

// replayedSecret answers a retried request whose first try was recorded but
// whose reply carried a fresh secret (a session, a device token, a
// challenge) that only its keyed hash in the stream remembers: the instance
// that answered the first try gave it out, and its reply cache returns it to
// a retry sent there. Elsewhere the client is told `unavailable` and starts
// the step again (a spent code then says otp_expired: ask a new one). The
// stream is not changed: nothing is decided twice.
func (s *Service) replayedSecret(subject string) Reply {
	s.log.Warn("retried request recorded earlier; its reply held a secret not kept", "subject", subject)
	return errorReply(errors.New("request already recorded"))
}

func (s *Service) authenticated(accountID, channel, sessionToken string, e events.LoginSucceeded, deviceToken, deviceID string, st domain.Account) Reply {
	rep := ok("authenticated")
	rep.AccountID = accountID
	rep.Session = &Session{Token: sessionToken, ExpiresAt: e.SessionExpiresAt.UTC()}
	if channel == "app" {
		offer := e.Method != events.MethodBiometric && st.OfferBiometric(s.policy, deviceID, e.At)
		rep.OfferBiometric = &offer
	}
	if deviceToken != "" && e.DeviceHash != "" {
		rep.DeviceToken = deviceToken
		rep.DeviceTokenExpiresAt = utc(e.DeviceExpiresAt)
	}
	return rep
}

// openLoginID reads the account and login of a login_id.
func (s *Service) openLoginID(loginID string) (accountID, login string, err error) {
	if err := required("login_id", loginID, 512); err != nil {
		return "", "", err
	}
	plain, err := s.keys.Open(loginID, "login")
	if err != nil {
		return "", "", &domain.Error{Code: domain.CodeLoginExpired}
	}
	accountID, login, found := strings.Cut(plain, "|")
	if !found {
		return "", "", &domain.Error{Code: domain.CodeLoginExpired}
	}
	return accountID, login, nil
}

func (s *Service) otpSend(ctx context.Context, data []byte) Reply {
	var req otpSendRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	accountID, login, err := s.openLoginID(req.LoginID)
	if err != nil {
		return errorReply(err)
	}
	now := s.clock.Now()
	code := secrets.NewCode(s.policy.OTPDigits)
	cmd := domain.SendOTP{LoginID: login,
		CodeHash:   s.keys.CodeHash(accountID, "login:"+login, code),
		CodeSealed: s.keys.Seal(code, accountID)}
	out, err := s.decide(ctx, "login.otp.send", accountID, now, &req.Common, func(domain.Account) (domain.Command, error) {
		return cmd, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	rep := ok("otp_sent")
	rep.MaskedEmail = out.state.MaskedEmail
	for _, e := range out.recorded {
		if e, isIssued := e.(events.OTPIssued); isIssued {
			rep.ExpiresAt = utc(e.ExpiresAt)
			if e.RequestsLastHour > 1 {
				rep.Message = domain.OTPResentInfo
			}
		}
	}
	return rep
}

func (s *Service) otpVerify(ctx context.Context, data []byte) Reply {
	var req otpVerifyRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	code, err := codeField(req.Code, s.policy.OTPDigits)
	if err != nil {
		return errorReply(err)
	}
	accountID, login, err := s.openLoginID(req.LoginID)
	if err != nil {
		return errorReply(err)
	}
	now := s.clock.Now()
	sessionToken := accountID + "." + secrets.NewToken()
	deviceToken, deviceHash := "", ""
	if req.RememberDevice {
		deviceToken = secrets.NewToken()
		deviceHash = s.keys.TokenHash("device:"+accountID, deviceToken)
	}
	cmd := domain.VerifyOTP{LoginID: login, CodeHash: s.keys.CodeHash(accountID, "login:"+login, code),
		RememberDevice: req.RememberDevice, DeviceHash: deviceHash,
		SessionHash: s.keys.TokenHash("session", sessionToken), Channel: req.Channel}
	out, err := s.decide(ctx, "login.otp.verify", accountID, now, &req.Common, func(domain.Account) (domain.Command, error) {
		return cmd, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	for _, e := range out.recorded {
		if e, isOK := e.(events.LoginSucceeded); isOK && !out.duplicate {
			return s.authenticated(accountID, req.Channel, sessionToken, e, deviceToken, req.DeviceID, out.state)
		}
	}
	return s.replayedSecret("login.otp.verify")
}

func (s *Service) logout(ctx context.Context, data []byte) Reply {
	var req sessionRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	accountID, hash, err := s.sessionAccount(req.Session)
	if err != nil {
		return errorReply(err)
	}
	_, err = s.accounts.execute(ctx, accountID, s.clock.Now(), metadata(&req.Common), func(domain.Account) (domain.Command, error) {
		return domain.Logout{SessionHash: hash}, nil
	})
	if err != nil {
		return s.fail("session.logout", err)
	}
	return ok("logged_out")
}

// sessionAccount reads the account a session token belongs to, and the
// token's keyed hash; whether the session is open is the decider's business.
func (s *Service) sessionAccount(token string) (accountID, hash string, err error) {
	if err := required("session", token, 256); err != nil {
		return "", "", err
	}
	accountID, _, found := strings.Cut(token, ".")
	if !found || !validAccountID(accountID) {
		return "", "", &domain.Error{Code: domain.CodeSessionInvalid}
	}
	return accountID, s.keys.TokenHash("session", token), nil
}

// lookupNIR finds the account of a canonical NIR through the index. It
// keeps no cache: a cache of known NIRs would answer them faster than
// unknown ones (issue 19), and grow with the accounts (issue 16); the
// index's direct get costs far less than the password hash beside it.
func (s *Service) lookupNIR(ctx context.Context, nir string) (string, error) {
	return s.index.Get(ctx, s.keys.NIRIndexKey(nir))
}

// floor makes the calling command take at least ResponseFloor from start:
// deferred by the commands whose reply must not tell whether a NIR has an
// account, so the work behind a reply (a cold account load, an append, a
// shadow write) does not show in its timing.
func (s *Service) floor(ctx context.Context, start time.Time) {
	if s.cfg.ResponseFloor <= 0 {
		return
	}
	t := time.NewTimer(time.Until(start.Add(s.cfg.ResponseFloor)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// fail logs an internal failure (without any secret: errors here never hold
// one) and tells the user the service is unavailable.
func (s *Service) fail(subject string, err error) Reply {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.log.Warn("command timed out", "subject", subject, "err", err)
	} else {
		s.log.Error("command failed", "subject", subject, "err", err)
	}
	return errorReply(err)
}

func validAccountID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
