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
		var tooCostly *secrets.HashCostError
		switch err := secrets.CheckHash(req.PasswordHash, s.policy.HashLimits); {
		case errors.As(err, &tooCostly):
			l := s.policy.HashLimits
			return domain.InvalidRequest("password_hash", fmt.Sprintf(
				"a un coût trop élevé (%s %d, au plus %d) : au plus m=%d KiB, t=%d, p=%d pour argon2id, coût %d pour bcrypt",
				tooCostly.Param, tooCostly.Value, tooCostly.Max, l.Argon2MaxMemoryKiB, l.Argon2MaxTime, l.Argon2MaxThreads, l.BcryptMaxCost))
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
