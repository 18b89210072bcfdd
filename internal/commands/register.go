package commands

// Use case: account.register, a new account with its password, or the
// reactivation of a deactivated one (Cas 1 bis).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/passwordrule"
)

type registerRequest struct {
	Common
	NIR            string `json:"nir"`
	Email          string `json:"email"`
	Password       string `json:"password"`
	EmailValidated *bool  `json:"email_validated"`
	Affiliation    string `json:"affiliation"`
	// Identity is the holder's civil identity, optional (issue 18).
	Identity *domain.Identity `json:"identity"`
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
	identity, err := identityField(nir, req.Identity)
	if err != nil {
		return errorReply(err)
	}
	if err := passwordrule.Check(s.policy, req.Password, nir, email); err != nil {
		return errorReply(err)
	}
	// An active account on this NIR is told before hashing: a flood of
	// registrations on a NIR costs no hash (issue 11, kind 4); and one at
	// a time per NIR holds one hashing worker at most.
	key := nirWork(s.keys.NIRIndexKey(nir))
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
	return s.createAccount(ctx, contract.CmdAccountRegister, &req.Common, nir, email, identity, hash, *req.EmailValidated, req.Affiliation)
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
// identity, if given, is sealed for the account as the email is.
func (s *Service) createAccount(ctx context.Context, subject string, c *Common, nir, email string, identity *domain.Identity, hash string, validated bool, affiliation string) contract.Reply {
	now := s.clock.Now()
	keys := s.keys.NIRIndexKeys(nir)
	key := keys[0]
	// The index create is the atomic uniqueness check: of two registrations
	// of one NIR, one creates the key, the other finds it and meets the
	// account (to reactivate it, or to be told it exists). A NIR indexed
	// under a previous key is met the same way (claimIndexed).
	claimed := events.NewID(now)
	accountID, err := s.claimIndexed(ctx, keys, claimed)
	if err != nil {
		return s.fail(subject, fmt.Errorf("NIR index: %w", err))
	}
	cmd := domain.Register{NIRHash: key, EmailSealed: s.keys.Seal(email, accountID), MaskedEmail: domain.MaskEmail(email),
		EmailValidated: validated, PasswordHash: hash, Affiliation: affiliation}
	if identity != nil {
		plain, err := json.Marshal(identity)
		if err != nil {
			return s.fail(subject, fmt.Errorf("encode identity: %w", err))
		}
		cmd.IdentitySealed = s.keys.Seal(string(plain), accountID)
	}
	var out outcome
	if accountID == claimed {
		// A new account: nothing to load (accounts.create).
		out, err = s.accounts.create(ctx, accountID, now, metadata(c), cmd, subject == contract.CmdAccountRegister)
	} else {
		out, err = s.accounts.execute(ctx, accountID, now, metadata(c), func(domain.Account) (domain.Command, error) {
			return cmd, nil
		})
	}
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

// identityField checks the optional identity of a new account against its
// canonical NIR (domain.CheckIdentity: invalid_request naming the field,
// identity.birthdate...): nil when none was given.
func identityField(nir string, in *domain.Identity) (*domain.Identity, error) {
	if in == nil {
		return nil, nil
	}
	id, err := domain.CheckIdentity(nir, *in)
	if err != nil {
		return nil, err
	}
	return &id, nil
}
