package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/passwordrule"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type registerRequest struct {
	Common
	NIR            string `json:"nir"`
	Email          string `json:"email"`
	Password       string `json:"password"`
	EmailValidated *bool  `json:"email_validated"`
	Affiliation    string `json:"affiliation"`
}

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

// register creates an account with a password, or reactivates a
// deactivated one (Cas 1 bis).
func (s *Service) register(ctx context.Context, data []byte) contract.Reply {
	var req registerRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	nir, email, err := s.checkAccountFields(req.NIR, req.Email, req.EmailValidated, req.Affiliation, func() error {
		return required("password", req.Password, maxPasswordBytes)
	})
	if err != nil {
		return errorReply(err)
	}
	if err := passwordrule.Check(s.policy, req.Password, nir, email); err != nil {
		return errorReply(err)
	}
	// An active account on this NIR is told before hashing: a flood of
	// registrations on a NIR costs no hash (issue 11, kind 4); and one at
	// a time per NIR holds one hashing worker at most.
	key := "nir:" + s.keys.NIRIndexKey(nir)
	release, err := s.gate.acquire(ctx, key)
	if err != nil {
		return s.fail(contract.CmdAccountRegister, err)
	}
	defer release()
	if id, err := s.lookupNIR(ctx, nir); err == nil {
		refused, err := s.accounts.refusal(ctx, id, s.clock.Now(), domain.Register{Affiliation: req.Affiliation})
		if err != nil {
			return s.fail(contract.CmdAccountRegister, err)
		}
		if refused != nil {
			return errorReply(refused)
		}
	} else if !errors.Is(err, eventstore.ErrNotFound) {
		return s.fail(contract.CmdAccountRegister, err)
	}
	hash, err := s.hashPassword(ctx, key, req.Password)
	if err != nil {
		return s.fail(contract.CmdAccountRegister, err)
	}
	return s.createAccount(ctx, contract.CmdAccountRegister, &req.Common, nir, email, hash, *req.EmailValidated, req.Affiliation)
}

type importRequest struct {
	Common
	NIR            string `json:"nir"`
	Email          string `json:"email"`
	PasswordHash   string `json:"password_hash"`
	EmailValidated *bool  `json:"email_validated"`
	Affiliation    string `json:"affiliation"`
}

// importAccount creates an account with an existing password hash (argon2id
// or bcrypt PHC string), so a user base moves without resetting passwords:
// the hash is replaced by the current argon2id one at the first login.
func (s *Service) importAccount(ctx context.Context, data []byte) contract.Reply {
	var req importRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	nir, email, err := s.checkAccountFields(req.NIR, req.Email, req.EmailValidated, req.Affiliation, func() error {
		if err := required("password_hash", req.PasswordHash, 512); err != nil {
			return err
		}
		switch err := secrets.CheckHash(req.PasswordHash, s.policy.HashLimits); {
		case errors.Is(err, secrets.ErrHashCost):
			l := s.policy.HashLimits
			return domain.InvalidRequest("password_hash", fmt.Sprintf(
				"a un coût trop élevé (%v) : au plus m=%d KiB, t=%d, p=%d pour argon2id, coût %d pour bcrypt",
				strings.TrimPrefix(err.Error(), secrets.ErrHashCost.Error()+": "), l.Argon2MaxMemoryKiB, l.Argon2MaxTime, l.Argon2MaxThreads, l.BcryptMaxCost))
		case err != nil:
			return domain.InvalidRequest("password_hash", "doit être une empreinte argon2id ou bcrypt au format PHC ($argon2id$… ou $2b$…)")
		}
		return nil
	})
	if err != nil {
		return errorReply(err)
	}
	return s.createAccount(ctx, contract.CmdAccountImport, &req.Common, nir, email, req.PasswordHash, *req.EmailValidated, req.Affiliation)
}

// checkAccountFields validates a new account's fields in the order of the
// form; checkSecret checks the password (or its hash) in its place.
func (s *Service) checkAccountFields(rawNIR, rawEmail string, validated *bool, affiliation string, checkSecret func() error) (nir, email string, err error) {
	if nir, err = nirField("nir", rawNIR); err != nil {
		return "", "", err
	}
	if email, err = emailField("email", rawEmail); err != nil {
		return "", "", err
	}
	if err := checkSecret(); err != nil {
		return "", "", err
	}
	if validated == nil {
		return "", "", domain.InvalidRequest("email_validated", "est obligatoire")
	}
	if err := required("affiliation", affiliation, 16); err != nil {
		return "", "", err
	}
	switch affiliation {
	case domain.AffiliationActive, domain.AffiliationPending, domain.AffiliationNone:
	default:
		return "", "", domain.InvalidRequest("affiliation", "doit valoir active, pending ou none")
	}
	return nir, email, nil
}

// createAccount claims the NIR in the index and records the registration.
func (s *Service) createAccount(ctx context.Context, subject string, c *Common, nir, email, hash string, validated bool, affiliation string) contract.Reply {
	now := s.clock.Now()
	key := s.keys.NIRIndexKey(nir)
	accountID := events.NewID(now)
	// The index create is the atomic uniqueness check: of two registrations
	// of one NIR, one creates the key, the other finds it and meets the
	// account (to reactivate it, or to be told it exists).
	if err := s.index.Create(ctx, key, accountID); errors.Is(err, eventstore.ErrExists) {
		if accountID, err = s.index.Get(ctx, key); err != nil {
			return s.fail(subject, fmt.Errorf("read NIR index: %w", err))
		}
	} else if err != nil {
		return s.fail(subject, fmt.Errorf("create NIR index: %w", err))
	}
	cmd := domain.Register{NIRHash: key, EmailSealed: s.keys.Seal(email, accountID), MaskedEmail: domain.MaskEmail(email),
		EmailValidated: validated, PasswordHash: hash, Affiliation: affiliation}
	out, err := s.accounts.execute(ctx, accountID, now, metadata(c), func(domain.Account) (domain.Command, error) {
		return cmd, nil
	})
	if err != nil {
		return s.fail(subject, err)
	}
	if out.refusal != nil {
		return errorReply(out.refusal)
	}
	rep := contract.AccountReply{Done: contract.OK(contract.StatusRegistered), AccountID: accountID}
	for _, e := range out.recorded {
		if _, re := e.(events.AccountReactivated); re {
			rep.Status = contract.StatusReactivated
		}
	}
	return rep
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
