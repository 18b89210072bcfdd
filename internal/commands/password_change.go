package commands

// Use cases: password.change.start, .verify_code and .complete, the
// password change of a logged-in user with a code by email (Changement
// Étape 1; the strict profile also asks the current password).

import (
	"context"
	"fmt"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/passwordrule"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type changeStartRequest struct {
	Common
	Session         string `json:"session"`
	CurrentPassword string `json:"current_password,omitempty"` // required by the strict profile
}

type newPasswordRequest struct {
	Common
	Session     string `json:"session"`
	NewPassword string `json:"new_password"`
}

func (s *Service) passwordChangeStart(ctx context.Context, data []byte) contract.Reply {
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
	accountID, sessionHash, err := s.sessionAccount(ctx, req.Session)
	if err != nil {
		return errorReply(err)
	}
	now := s.clock.Now()
	code := secrets.NewCode(s.policy.ChangeCodeDigits)
	strict := s.policy.ChangeRequiresCurrentPassword
	// The strict profile's current password is checked as at login: one
	// check at a time per account (see loginPassword), outside the
	// account's lock (decideChecked), and only for an open session on an
	// account not blocked: a forged session costs no hash.
	var pc passwordCheck
	recheck := func(a domain.Account) error {
		if !a.SessionValid(sessionHash, now) || a.Blocked(now) || pc.current(a) {
			return nil
		}
		ok, _, err := s.verifyPassword(ctx, accountID, nil, req.CurrentPassword, a.PasswordHash)
		if err != nil {
			return fmt.Errorf("verify current password of %s: %w", accountID, err)
		}
		pc = passwordCheck{hash: a.PasswordHash, ok: ok}
		return nil
	}
	if strict {
		// A request refused whatever the password (a forged or closed
		// session, a block, a new address, the flow's limits) is refused
		// before it queues for the account's turn: it would delay the
		// holder's logins.
		if refused, err := s.accounts.refusal(ctx, accountID, now, domain.StartPasswordChange{SessionHash: sessionHash, PasswordOK: true}); err != nil {
			return s.fail(contract.CmdPasswordChangeStart, err)
		} else if refused != nil {
			return errorReplyFor(req.Channel, refused)
		}
		release, err := s.gate.acquire(ctx, accountID)
		if err != nil {
			return s.fail(contract.CmdPasswordChangeStart, err)
		}
		defer release()
		peek, err := s.accounts.current(ctx, accountID)
		if err == nil {
			err = recheck(peek.state)
		}
		if err != nil {
			return s.fail(contract.CmdPasswordChangeStart, err)
		}
	}
	out, err := s.decideChecked(ctx, contract.CmdPasswordChangeStart, accountID, now, &req.Common, recheck, func(a domain.Account) (domain.Command, error) {
		if strict && a.SessionValid(sessionHash, now) && !a.Blocked(now) && !pc.current(a) {
			return nil, errRecheck
		}
		return domain.StartPasswordChange{SessionHash: sessionHash, PasswordOK: pc.ok,
			CodeHash: s.keys.CodeHash(accountID, events.FlowPasswordChange, code), CodeSealed: s.keys.Seal(code, accountID)}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	rep := contract.ChangeReply{Done: contract.OK(contract.StatusCodeSent), MaskedEmail: out.state.MaskedEmail}
	for _, e := range out.recorded {
		if e, isIssued := e.(events.PasswordChangeCodeIssued); isIssued {
			rep.ExpiresAt = contract.Timestamp(e.ExpiresAt)
		}
	}
	return rep
}

func (s *Service) passwordChangeVerify(ctx context.Context, data []byte) contract.Reply {
	var req codeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	code, err := codeField(req.Code, s.policy.ChangeCodeDigits)
	if err != nil {
		return errorReply(err)
	}
	_, _, err = s.onSession(ctx, contract.CmdPasswordChangeVerifyCode, &req.Common, req.Session, func(accountID, hash string, a domain.Account) (domain.Command, error) {
		codeHash, _ := secrets.Match(s.keys.CodeHashes(accountID, events.FlowPasswordChange, code), flowCodeHash(a.PasswordChange)...)
		return domain.VerifyChangeCode{SessionHash: hash, CodeHash: codeHash}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	return contract.OK(contract.StatusCodeVerified)
}

func (s *Service) passwordChangeComplete(ctx context.Context, data []byte) contract.Reply {
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
	accountID, sessionHash, err := s.sessionAccount(ctx, req.Session)
	if err != nil {
		return errorReply(err)
	}
	// The new password is hashed only for a request the decision would
	// take (issue 11, kind 4), one at a time per account.
	release, rep, admitted := s.admitNewPassword(ctx, contract.CmdPasswordChangeComplete, accountID, domain.CompletePasswordChange{SessionHash: sessionHash})
	if !admitted {
		return rep
	}
	defer release()
	hash, err := s.hashPassword(ctx, accountID, req.NewPassword)
	if err != nil {
		return s.fail(contract.CmdPasswordChangeComplete, err)
	}
	_, _, err = s.onSession(ctx, contract.CmdPasswordChangeComplete, &req.Common, req.Session, func(_, sessionHash string, _ domain.Account) (domain.Command, error) {
		return domain.CompletePasswordChange{SessionHash: sessionHash, PasswordHash: hash}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	return contract.OK(contract.StatusPasswordChanged)
}
