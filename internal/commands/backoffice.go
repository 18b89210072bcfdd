package commands

// Use cases of advisers: account.deactivate, account.set_affiliation and
// account.unlock, on an account named by id or by NIR.

import (
	"context"
	"errors"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// accountRef names an account by id or by NIR (back-office commands).
type accountRef struct {
	Common
	AccountID string `json:"account_id,omitempty"`
	NIR       string `json:"nir,omitempty"`
}

type deactivateRequest struct {
	accountRef
	Reason string `json:"reason,omitempty"`
}

type affiliationRequest struct {
	accountRef
	Affiliation string `json:"affiliation"`
}

// resolve finds the account a back-office request names.
func (s *Service) resolve(ctx context.Context, ref *accountRef) (string, error) {
	switch {
	case ref.AccountID != "" && ref.NIR != "":
		return "", domain.InvalidRequest("account_id", "ne doit pas être donné avec nir : l'un ou l'autre")
	case ref.AccountID != "":
		if !validAccountID(ref.AccountID) {
			return "", domain.InvalidRequest("account_id", "doit être un identifiant de compte (ULID de 26 caractères)")
		}
		return ref.AccountID, nil
	case ref.NIR != "":
		nir, err := nirField("nir", ref.NIR)
		if err != nil {
			return "", err
		}
		id, err := s.lookupNIR(ctx, nir)
		if errors.Is(err, eventstore.ErrNotFound) {
			return "", &domain.Error{Code: domain.CodeAccountNotFound}
		}
		return id, err
	}
	return "", domain.InvalidRequest("account_id", "est obligatoire (ou nir)")
}

// backoffice runs an adviser's command on the account the request names.
func (s *Service) backoffice(ctx context.Context, subject string, ref *accountRef, cmd domain.Command) (outcome, string, error) {
	accountID, err := s.resolve(ctx, ref)
	if err != nil {
		return outcome{}, "", err
	}
	out, err := s.decide(ctx, subject, accountID, s.clock.Now(), &ref.Common, func(domain.Account) (domain.Command, error) {
		return cmd, nil
	})
	return out, accountID, err
}

func (s *Service) deactivate(ctx context.Context, data []byte) contract.Reply {
	var req deactivateRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if len(req.Reason) > 500 {
		return errorReply(domain.InvalidRequest("reason", "doit faire au plus 500 octets"))
	}
	out, id, err := s.backoffice(ctx, contract.CmdAccountDeactivate, &req.accountRef, domain.Deactivate{Reason: req.Reason})
	if err != nil {
		return errorReply(err)
	}
	rep := contract.AccountReply{Done: contract.OK(contract.StatusDeactivated), AccountID: id}
	rep.DeactivatedAt = contract.Timestamp(out.state.DeactivatedAt)
	for _, e := range out.recorded {
		if e, isDeactivated := e.(events.AccountDeactivated); isDeactivated {
			rep.DeactivatedAt = contract.Timestamp(e.At) // a retry says what was recorded
		}
	}
	return rep
}

func (s *Service) setAffiliation(ctx context.Context, data []byte) contract.Reply {
	var req affiliationRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := required("affiliation", req.Affiliation, 16); err != nil {
		return errorReply(err)
	}
	_, id, err := s.backoffice(ctx, contract.CmdAccountSetAffiliation, &req.accountRef, domain.SetAffiliation{Affiliation: req.Affiliation})
	if err != nil {
		return errorReply(err)
	}
	return contract.AccountReply{Done: contract.OK(contract.StatusAffiliationSet), AccountID: id}
}

func (s *Service) unlock(ctx context.Context, data []byte) contract.Reply {
	var req accountRef
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	_, id, err := s.backoffice(ctx, contract.CmdAccountUnlock, &req, domain.Unlock{})
	if err != nil {
		return errorReply(err)
	}
	return contract.AccountReply{Done: contract.OK(contract.StatusUnlocked), AccountID: id}
}
