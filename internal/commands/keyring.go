package commands

// Key rotation (docs/keys.md): what a client presents (a session, a
// trusted device's token, a code, a reset link, a challenge, a NIR, a
// device id) may have been hashed under a previous key of the keyring
// (AUTH_SECRET_KEY_PREVIOUS). The domain compares hashes and stays as it
// is: here, of the presented secret's hashes under each key (current
// first), the one the account stores is picked before the decision, and
// index lookups try each key. New secrets are always hashed under the
// current key. Without previous keys, each helper is the single current
// hash or get it was before.

import (
	"context"
	"errors"
	"fmt"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// The hashes an account stores, by kind of presented secret.
func sessionHashes(a domain.Account) []string {
	out := make([]string, len(a.Sessions))
	for i, s := range a.Sessions {
		out[i] = s.Hash
	}
	return out
}

func trustedDeviceHashes(a domain.Account) []string {
	out := make([]string, len(a.TrustedDevices))
	for i, d := range a.TrustedDevices {
		out[i] = d.Hash
	}
	return out
}

func otpHash(a domain.Account) []string {
	if a.OTP == nil {
		return nil
	}
	return []string{a.OTP.CodeHash}
}

func flowCodeHash(f domain.ChangeFlow) []string {
	if f.Code == nil {
		return nil
	}
	return []string{f.Code.CodeHash}
}

func resetHash(a domain.Account) []string {
	if a.Reset == nil {
		return nil
	}
	return []string{a.Reset.TokenHash}
}

func challengeHash(a domain.Account, deviceID string) []string {
	if b, ok := a.Biometric(deviceID); ok && b.Challenge != "" {
		return []string{b.Challenge}
	}
	return nil
}

// storedHash is, of hashes (one presented secret under each key, current
// first), the one the account as the stream holds it now stores (stored
// lists them), else the current key's. For checks made before the
// decision's build has the state (a session, a reset link); without
// previous keys it loads nothing. A failed load picks the current key's:
// the decision that follows loads again and reports the failure.
func (s *Service) storedHash(ctx context.Context, accountID string, hashes []string, stored func(domain.Account) []string) string {
	if len(hashes) == 1 {
		return hashes[0]
	}
	c, err := s.accounts.current(ctx, accountID)
	if err != nil {
		return hashes[0]
	}
	h, _ := secrets.Match(hashes, stored(c.state)...)
	return h
}

// findIndexed looks a name up in the index by its keys (its index key
// under each key of the ring, current first): the account of the first
// found, or an error wrapping eventstore.ErrNotFound. Found under a
// previous key only, the current key's entry is written too (best
// effort), so the next lookup takes one get and, once every account has
// been looked up, the previous key is no longer needed for the index.
func (s *Service) findIndexed(ctx context.Context, keys []string) (string, error) {
	var err error
	for i, k := range keys {
		var id string
		if id, err = s.index.Get(ctx, k); err == nil {
			if i > 0 {
				id = s.reindex(ctx, keys[0], id)
			}
			return id, nil
		}
		if !errors.Is(err, eventstore.ErrNotFound) {
			return "", err
		}
	}
	return "", err
}

// reindex writes the current key's index entry of an account found under
// a previous key, and returns the account to use: the current entry's if
// one appeared meanwhile (another instance's re-index, or, during the
// deployment of a new key, a registration on an instance that did not
// know the previous one yet; logged, without keys or ids).
func (s *Service) reindex(ctx context.Context, current, id string) string {
	err := s.index.Create(ctx, current, id)
	if errors.Is(err, eventstore.ErrExists) {
		owner, gerr := s.index.Get(ctx, current)
		if gerr != nil {
			s.log.Warn("index: re-indexing under the current key", "err", gerr)
			return id
		}
		if owner != id {
			s.log.Error("index: one name has two accounts, under the current key and a previous one; the current key's is used")
		}
		return owner
	}
	if err != nil {
		s.log.Warn("index: re-indexing under the current key", "err", err)
	}
	return id
}

// claimIndexed gives a name (by its keys, current first) to the account
// id unless it has an owner under any key: it returns the owner, id if the
// claim won. The current key's create is the atomic check; the previous
// keys are read before it (see docs/keys.md for the window this leaves
// while a new key is deployed).
func (s *Service) claimIndexed(ctx context.Context, keys []string, id string) (string, error) {
	for _, k := range keys[1:] {
		owner, err := s.index.Get(ctx, k)
		if err == nil {
			return s.reindex(ctx, keys[0], owner), nil
		}
		if !errors.Is(err, eventstore.ErrNotFound) {
			return "", fmt.Errorf("read index: %w", err)
		}
	}
	if err := s.index.Create(ctx, keys[0], id); errors.Is(err, eventstore.ErrExists) {
		owner, err := s.index.Get(ctx, keys[0])
		if err != nil {
			return "", fmt.Errorf("read index: %w", err)
		}
		return owner, nil
	} else if err != nil {
		return "", fmt.Errorf("create index entry: %w", err)
	}
	return id, nil
}
