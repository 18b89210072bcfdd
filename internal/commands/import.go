package commands

// Use case: account.import, an account moved from another system with its
// password hash.

import (
	"context"
	"errors"
	"fmt"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type importRequest struct {
	Common
	importFields
}

// importFields are an imported account's: one account.import request, or
// one row of an account.import_batch.
type importFields struct {
	NIR            string `json:"nir"`
	Email          string `json:"email"`
	PasswordHash   string `json:"password_hash"`
	EmailValidated *bool  `json:"email_validated"`
	Affiliation    string `json:"affiliation"`
	// Identity is the holder's civil identity, optional (issue 18).
	Identity *domain.Identity `json:"identity"`
}

// importAccount creates an account with an existing password hash (argon2id
// or bcrypt PHC string), so a user base moves without resetting passwords:
// the hash is replaced by the current argon2id one at the first login.
func (s *Service) importAccount(ctx context.Context, data []byte) contract.Reply {
	var req importRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	return s.importOne(ctx, contract.CmdAccountImport, &req.Common, req.importFields)
}

// importOne checks an imported account's fields and creates it: the
// reply account.import gives, for one request or one row of a batch.
func (s *Service) importOne(ctx context.Context, subject string, c *Common, f importFields) contract.Reply {
	nir, email, err := s.checkAccountFields(f.NIR, f.Email, f.EmailValidated, f.Affiliation, func() error {
		return s.checkImportedHash(f.PasswordHash)
	})
	if err != nil {
		return errorReply(err)
	}
	identity, err := identityField(nir, f.Identity)
	if err != nil {
		return errorReply(err)
	}
	return s.createAccount(ctx, subject, c, nir, email, identity, f.PasswordHash, *f.EmailValidated, f.Affiliation)
}

// checkImportedHash admits an imported password hash: an argon2id or
// bcrypt PHC string whose cost is within the policy's bounds
// (Policy.HashLimits), so that a login never pays more than the bounds
// say. It is parsed, never computed.
func (s *Service) checkImportedHash(phc string) error {
	if err := required("password_hash", phc, 512); err != nil {
		return err
	}
	var tooCostly *secrets.HashCostError
	switch err := secrets.CheckHash(phc, s.policy.HashLimits); {
	case errors.As(err, &tooCostly):
		l := s.policy.HashLimits
		return domain.InvalidRequest("password_hash", fmt.Sprintf(
			"a un coût trop élevé (%s %d, au plus %d) : au plus m=%d KiB, t=%d, p=%d pour argon2id, coût %d pour bcrypt",
			tooCostly.Param, tooCostly.Value, tooCostly.Max, l.Argon2MaxMemoryKiB, l.Argon2MaxTime, l.Argon2MaxThreads, l.BcryptMaxCost))
	case err != nil:
		return domain.InvalidRequest("password_hash", "doit être une empreinte argon2id ou bcrypt au format PHC ($argon2id$… ou $2b$…)")
	}
	return nil
}
