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
	"github.com/ameli-auth/authsvc/internal/passwordrule"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type changeStartRequest struct {
	Common
	Session         string `json:"session"`
	CurrentPassword string `json:"current_password,omitempty"` // required by the strict profile
}

type codeRequest struct {
	Common
	Session string `json:"session"`
	Code    string `json:"code"`
}

type newPasswordRequest struct {
	Common
	Session     string `json:"session"`
	NewPassword string `json:"new_password"`
}

type emailChangeRequest struct {
	Common
	Session  string `json:"session"`
	NewEmail string `json:"new_email"`
}

type resetRequest struct {
	Common
	NIR string `json:"nir"`
}

type resetCompleteRequest struct {
	Common
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

// decide runs a command on an account and records its fact. An internal
// failure is logged here; it and the domain's refusal come back as the error.
func (s *Service) decide(ctx context.Context, subject, accountID string, now time.Time, c *Common,
	build func(domain.Account) (domain.Command, error)) (outcome, error) {
	out, err := s.accounts.execute(ctx, accountID, now, metadata(c), build)
	if err != nil {
		s.fail(subject, err)
		return outcome{}, err
	}
	if out.refusal != nil {
		return outcome{}, out.refusal
	}
	return out, nil
}

// onSession runs a command of a logged-in user on the session's account.
func (s *Service) onSession(ctx context.Context, subject string, c *Common, session string,
	build func(accountID, sessionHash string, a domain.Account) (domain.Command, error)) (outcome, string, error) {
	accountID, hash, err := s.sessionAccount(session)
	if err != nil {
		return outcome{}, "", err
	}
	out, err := s.decide(ctx, subject, accountID, s.clock.Now(), c, func(a domain.Account) (domain.Command, error) {
		return build(accountID, hash, a)
	})
	return out, accountID, err
}

func (s *Service) passwordChangeStart(ctx context.Context, data []byte) Reply {
	var req changeStartRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if len(req.CurrentPassword) > maxPasswordBytes {
		return errorReply(domain.InvalidRequest("current_password", fmt.Sprintf("doit faire au plus %d octets", maxPasswordBytes)))
	}
	if s.policy.ChangeRequiresCurrentPassword {
		if err := required("current_password", req.CurrentPassword, maxPasswordBytes); err != nil {
			return errorReply(err)
		}
	}
	code := secrets.NewCode(s.policy.ChangeCodeDigits)
	var checked string
	var passwordOK bool
	if s.policy.ChangeRequiresCurrentPassword {
		// The current password is checked as at login: one check at a time
		// per account (see loginPassword).
		accountID, _, err := s.sessionAccount(req.Session)
		if err != nil {
			return errorReply(err)
		}
		release, err := s.gate.acquire(ctx, accountID)
		if err != nil {
			return s.fail("password.change.start", err)
		}
		defer release()
	}
	out, _, err := s.onSession(ctx, "password.change.start", &req.Common, req.Session, func(accountID, hash string, a domain.Account) (domain.Command, error) {
		now := s.clock.Now()
		if s.policy.ChangeRequiresCurrentPassword && a.SessionValid(hash, now) && !a.Blocked(now) && checked != a.PasswordHash {
			ok, _, err := s.verifyPassword(ctx, accountID, nil, req.CurrentPassword, a.PasswordHash)
			if err != nil {
				return nil, err
			}
			checked, passwordOK = a.PasswordHash, ok
		}
		return domain.StartPasswordChange{SessionHash: hash, PasswordOK: passwordOK,
			CodeHash: s.keys.CodeHash(accountID, events.FlowPasswordChange, code), CodeSealed: s.keys.Seal(code, accountID)}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	rep := ok("code_sent")
	rep.MaskedEmail = out.state.MaskedEmail
	for _, e := range out.recorded {
		if e, isIssued := e.(events.PasswordChangeCodeIssued); isIssued {
			rep.ExpiresAt = utc(e.ExpiresAt)
		}
	}
	return rep
}

func (s *Service) passwordChangeVerify(ctx context.Context, data []byte) Reply {
	var req codeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	code, err := codeField(req.Code, s.policy.ChangeCodeDigits)
	if err != nil {
		return errorReply(err)
	}
	_, _, err = s.onSession(ctx, "password.change.verify_code", &req.Common, req.Session, func(accountID, hash string, _ domain.Account) (domain.Command, error) {
		return domain.VerifyChangeCode{SessionHash: hash, CodeHash: s.keys.CodeHash(accountID, events.FlowPasswordChange, code)}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	return ok("code_verified")
}

func (s *Service) passwordChangeComplete(ctx context.Context, data []byte) Reply {
	var req newPasswordRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := required("new_password", req.NewPassword, maxPasswordBytes); err != nil {
		return errorReply(err)
	}
	if err := passwordrule.Check(s.policy, req.NewPassword); err != nil {
		return errorReply(err)
	}
	accountID, sessionHash, err := s.sessionAccount(req.Session)
	if err != nil {
		return errorReply(err)
	}
	// The new password is hashed only for a request the decision would
	// take (issue 11, kind 4), one at a time per account.
	release, rep, admitted := s.admitNewPassword(ctx, "password.change.complete", accountID, domain.CompletePasswordChange{SessionHash: sessionHash})
	if !admitted {
		return rep
	}
	defer release()
	hash, err := s.hashPassword(ctx, accountID, req.NewPassword)
	if err != nil {
		return s.fail("password.change.complete", err)
	}
	_, _, err = s.onSession(ctx, "password.change.complete", &req.Common, req.Session, func(_, sessionHash string, _ domain.Account) (domain.Command, error) {
		return domain.CompletePasswordChange{SessionHash: sessionHash, PasswordHash: hash}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	return ok("password_changed")
}

func (s *Service) emailChange(ctx context.Context, data []byte) Reply {
	var req emailChangeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	email, err := emailField("new_email", req.NewEmail)
	if err != nil {
		return errorReply(err)
	}
	code := secrets.NewCode(s.policy.OTPDigits)
	out, _, err := s.onSession(ctx, "email.change", &req.Common, req.Session, func(accountID, hash string, _ domain.Account) (domain.Command, error) {
		return domain.RequestEmailChange{SessionHash: hash, NewEmailSealed: s.keys.Seal(email, accountID), NewMaskedEmail: domain.MaskEmail(email),
			CodeHash: s.keys.CodeHash(accountID, events.FlowEmailChange, code), CodeSealed: s.keys.Seal(code, accountID)}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	rep := ok("code_sent")
	for _, e := range out.recorded {
		if e, isIssued := e.(events.EmailChangeCodeIssued); isIssued {
			rep.MaskedEmail, rep.ExpiresAt = e.NewMaskedEmail, utc(e.ExpiresAt)
		}
	}
	return rep
}

func (s *Service) emailConfirm(ctx context.Context, data []byte) Reply {
	var req codeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	code, err := codeField(req.Code, s.policy.OTPDigits)
	if err != nil {
		return errorReply(err)
	}
	out, _, err := s.onSession(ctx, "email.confirm", &req.Common, req.Session, func(accountID, hash string, _ domain.Account) (domain.Command, error) {
		return domain.ConfirmEmailChange{SessionHash: hash, CodeHash: s.keys.CodeHash(accountID, events.FlowEmailChange, code)}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	rep := ok("email_changed")
	for _, e := range out.recorded {
		if e, isChanged := e.(events.EmailChanged); isChanged {
			rep.MaskedEmail = e.MaskedEmail
		}
	}
	return rep
}

// admitNewPassword lets a request that sets a new password go on to hash
// it only if the decision would take it (cmd without its hash) and only one
// at a time per account (issue 11, kind 4): a forged link or a change
// without a verified code is refused before it even queues for the
// account's turn, and checked again once it has it. When admitted, the
// caller holds the account's gate until release.
func (s *Service) admitNewPassword(ctx context.Context, subject, accountID string, cmd domain.Command) (release func(), rep Reply, admitted bool) {
	refused := func() (Reply, bool) {
		r, err := s.accounts.refusal(ctx, accountID, s.clock.Now(), cmd)
		if err != nil {
			return s.fail(subject, err), true
		}
		if r != nil {
			return errorReply(r), true
		}
		return Reply{}, false
	}
	if rep, no := refused(); no {
		return nil, rep, false
	}
	release, err := s.gate.acquire(ctx, accountID)
	if err != nil {
		return nil, s.fail(subject, err), false
	}
	if rep, no := refused(); no {
		release()
		return nil, rep, false
	}
	return release, Reply{}, true
}

// passwordResetRequest answers the same whatever the NIR: only a
// registered account with a validated email gets a link, and the reply does
// not say whether one was sent.
func (s *Service) passwordResetRequest(ctx context.Context, data []byte) Reply {
	start := time.Now()
	var req resetRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	nir, err := nirField("nir", req.NIR)
	if err != nil {
		return errorReply(err)
	}
	defer s.floor(ctx, start)
	now := s.clock.Now()
	nirKey := s.keys.NIRIndexKey(nir)
	accountID, err := s.lookupNIR(ctx, nir)
	if errors.Is(err, eventstore.ErrNotFound) {
		// The same work as for a known NIR (issue 19): a token made,
		// hashed and sealed, and the request recorded on the NIR's shadow
		// account (its write standing in for the append), within the same
		// limit of links per hour.
		token := "shadow." + secrets.NewToken()
		cmd := domain.RequestPasswordReset{TokenHash: s.keys.TokenHash("reset", token), TokenSealed: s.keys.Seal(token, nirKey)}
		if err := s.shadowDecide(ctx, nirKey, now, cmd); err != nil {
			return s.fail("password.reset.request", err)
		}
		return ok("reset_requested")
	}
	if err != nil {
		return s.fail("password.reset.request", err)
	}
	token := accountID + "." + secrets.NewToken()
	_, err = s.accounts.execute(ctx, accountID, now, metadata(&req.Common), func(domain.Account) (domain.Command, error) {
		return domain.RequestPasswordReset{TokenHash: s.keys.TokenHash("reset", token), TokenSealed: s.keys.Seal(token, accountID)}, nil
	})
	if err != nil {
		return s.fail("password.reset.request", err)
	}
	return ok("reset_requested")
}

func (s *Service) passwordResetComplete(ctx context.Context, data []byte) Reply {
	var req resetCompleteRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := required("token", req.Token, 256); err != nil {
		return errorReply(err)
	}
	if err := required("new_password", req.NewPassword, maxPasswordBytes); err != nil {
		return errorReply(err)
	}
	if err := passwordrule.Check(s.policy, req.NewPassword); err != nil {
		return errorReply(err)
	}
	accountID, _, found := strings.Cut(req.Token, ".")
	if !found || !validAccountID(accountID) {
		return errorReply(&domain.Error{Code: domain.CodeResetTokenInvalid})
	}
	tokenHash := s.keys.TokenHash("reset", req.Token)
	release, rep, admitted := s.admitNewPassword(ctx, "password.reset.complete", accountID, domain.CompletePasswordReset{TokenHash: tokenHash})
	if !admitted {
		return rep
	}
	defer release()
	hash, err := s.hashPassword(ctx, accountID, req.NewPassword)
	if err != nil {
		return s.fail("password.reset.complete", err)
	}
	_, err = s.decide(ctx, "password.reset.complete", accountID, s.clock.Now(), &req.Common, func(domain.Account) (domain.Command, error) {
		return domain.CompletePasswordReset{TokenHash: tokenHash, PasswordHash: hash}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	return ok("password_reset")
}
