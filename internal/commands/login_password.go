package commands

// Use case: login.password, the first step of a login (SPEC section 4,
// Login): NIR and password, then a security code or, with a trusted
// device's token, a session.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type loginPasswordRequest struct {
	Common
	NIR         string `json:"nir"`
	Password    string `json:"password"`
	DeviceToken string `json:"device_token,omitempty"`
	DeviceID    string `json:"device_id,omitempty"` // app: its biometric device id, so an enrolled device is not offered biometrics again
}

func (s *Service) loginPassword(ctx context.Context, data []byte) contract.Reply {
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
	// Counted by source before any hash, refused if the source's budget
	// is spent, whatever the NIR and the password (sources.go).
	held, err := s.reserveSource(ctx, req.ClientIP, now)
	var refusal *domain.Error
	if errors.As(err, &refusal) {
		return errorReplyFor(req.Channel, refusal)
	}
	if err != nil {
		return s.fail(contract.CmdLoginPassword, err)
	}
	rep := s.checkPassword(ctx, &req, nir, now)
	s.settleSource(ctx, held, rep, now)
	return rep
}

// checkPassword is a login.password once its source is counted: the
// NIR's account, or its shadow account if it has none.
func (s *Service) checkPassword(ctx context.Context, reqp *loginPasswordRequest, nir string, now time.Time) contract.Reply {
	req := *reqp
	nirKeys := s.keys.NIRIndexKeys(nir)
	nirKey := nirKeys[0] // an unknown NIR's shadow is under the current key
	accountID, err := s.findIndexed(ctx, nirKeys)
	if errors.Is(err, eventstore.ErrNotFound) {
		// The reply must not tell whether the NIR has an account: it goes
		// through the same rules as an account (a shadow account, issue
		// 19) with the same work: one check at a time per NIR, a real
		// argon2id check unless blocked, the state written back.
		s.log.Info("login attempt on an unknown NIR", "channel", req.Channel, "client_ip", req.ClientIP)
		if !s.currentShadow(ctx, nirKey).state.account().Blocked(now) {
			release, err := s.gate.acquire(ctx, nirWork(nirKey))
			if err != nil {
				return s.fail(contract.CmdLoginPassword, err)
			}
			defer release()
			stillNeeded := func() bool {
				c, ok := s.shadows.get(nirKey) // the cache only, as for an account
				return !ok || !c.state.account().Blocked(now)
			}
			if _, _, err := s.verifyPassword(ctx, nirWork(nirKey), stillNeeded, req.Password, s.dummyPHC); err != nil && !errors.Is(err, errHashSkipped) {
				return s.fail(contract.CmdLoginPassword, err)
			}
		}
		err := s.shadowDecide(ctx, nirKey, now, domain.SubmitPassword{Channel: req.Channel})
		var refusal *domain.Error
		if errors.As(err, &refusal) {
			return errorReplyFor(req.Channel, refusal)
		}
		if err != nil {
			return s.fail(contract.CmdLoginPassword, err)
		}
		return s.fail(contract.CmdLoginPassword, errors.New("shadow account accepted a password"))
	}
	if err != nil {
		return s.fail(contract.CmdLoginPassword, err)
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
			return s.fail(contract.CmdLoginPassword, err)
		}
		defer release()
		peek, peekErr = s.accounts.current(ctx, accountID)
	}

	// The password is checked outside the account's lock (decideChecked),
	// on the state loaded here; the decision, serialised under the lock and
	// checked by the append, uses that check only if the stored hash is
	// still the one checked.
	var pc passwordCheck
	check := func(a domain.Account, stillNeeded func() bool) error {
		if !a.Exists() || a.Blocked(now) || pc.current(a) {
			return nil // refused whatever the password, or checked already
		}
		ok, rehash, err := s.verifyPassword(ctx, accountID, stillNeeded, req.Password, a.PasswordHash)
		if errors.Is(err, errHashSkipped) {
			return nil // blocked meanwhile: the decision refuses without it
		}
		if err != nil {
			return fmt.Errorf("verify password of %s: %w", accountID, err)
		}
		pc = passwordCheck{hash: a.PasswordHash, ok: ok}
		if ok && rehash {
			// The stored hash uses older parameters: the login records
			// the password's hash with the current ones.
			if pc.newHash, err = s.hashPassword(ctx, accountID, req.Password); err != nil {
				return fmt.Errorf("rehash password of %s: %w", accountID, err)
			}
		}
		return nil
	}
	// A block known here is told without hashing, checked again once a
	// hashing worker is free (another request may have recorded it).
	if peekErr == nil {
		stillNeeded := func() bool {
			c, ok := s.accounts.cache.get(accountID)
			return !ok || !c.state.Blocked(now)
		}
		if err := check(peek.state, stillNeeded); err != nil {
			return s.fail(contract.CmdLoginPassword, err)
		}
	}

	loginID := events.NewID(now)
	sessionToken := accountID + "." + secrets.NewToken()
	var deviceHashes []string
	if req.DeviceToken != "" {
		deviceHashes = s.keys.TokenHashes("device:"+accountID, req.DeviceToken)
	}
	recheck := func(a domain.Account) error { return check(a, nil) }
	out, err := s.decideChecked(ctx, contract.CmdLoginPassword, accountID, now, &req.Common, recheck, func(a domain.Account) (domain.Command, error) {
		if !a.Exists() || a.Blocked(now) {
			return domain.SubmitPassword{}, nil // refused whatever the password
		}
		if !pc.current(a) {
			return nil, errRecheck
		}
		deviceHash := ""
		if deviceHashes != nil {
			deviceHash, _ = secrets.Match(deviceHashes, trustedDeviceHashes(a)...)
		}
		return domain.SubmitPassword{PasswordOK: pc.ok, DeviceHash: deviceHash, LoginID: loginID,
			SessionHash: s.keys.TokenHash("session", sessionToken), Channel: req.Channel,
			NewPasswordHash: pc.newHash}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	for _, e := range out.recorded {
		switch e := e.(type) {
		case events.PasswordVerified:
			return contract.LoginReply{Done: contract.OK(contract.StatusOTPRequired),
				LoginID: s.keys.Seal(accountID+"|"+e.LoginID, "login"), MaskedEmail: out.state.MaskedEmail}
		case events.LoginSucceeded:
			if out.duplicate {
				return s.replayedSecret(contract.CmdLoginPassword)
			}
			return s.authenticated(accountID, req.Channel, sessionToken, e, "", req.DeviceID, out.state)
		}
	}
	if out.duplicate {
		return s.replayedSecret(contract.CmdLoginPassword)
	}
	return s.fail(contract.CmdLoginPassword, fmt.Errorf("login of %s recorded nothing", accountID))
}
