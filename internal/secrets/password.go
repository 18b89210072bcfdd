package secrets

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// ErrHashFormat: a stored hash this code cannot read.
var ErrHashFormat = errors.New("password hash: unknown format")

// ErrHashCost: a hash whose parameters exceed the policy's ceilings
// (domain.HashLimits); it is never computed.
var ErrHashCost = errors.New("password hash: cost over the ceiling")

// bcryptAlphabet is bcrypt's base64 alphabet (salt and hash).
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func isBcrypt(phc string) bool {
	return strings.HasPrefix(phc, "$2a$") || strings.HasPrefix(phc, "$2b$") || strings.HasPrefix(phc, "$2y$")
}

// CheckHash tells whether VerifyPassword can read a stored hash (an
// argon2id PHC string, or a bcrypt one for imported accounts) within the
// limits: nil, or an error wrapping ErrHashFormat or ErrHashCost that says
// which parameter is at fault (no secret: parameters only). Reading a hash
// costs nothing; only VerifyPassword computes.
func CheckHash(phc string, l domain.HashLimits) error {
	if isBcrypt(phc) {
		// bcrypt.Cost reads the version and the cost only: the salt and
		// hash must be bcrypt's base64 too, or CompareHashAndPassword
		// fails on every login instead of the import refusing the hash.
		cost, err := bcrypt.Cost([]byte(phc))
		if err != nil || len(phc) != 60 || phc[6] != '$' || strings.Trim(phc[7:], bcryptAlphabet) != "" {
			return fmt.Errorf("%w: bcrypt", ErrHashFormat)
		}
		if cost > l.BcryptMaxCost {
			return &HashCostError{Param: "bcrypt cost", Value: uint64(cost), Max: uint64(l.BcryptMaxCost)}
		}
		return nil
	}
	p, _, _, err := parseArgon2id(phc)
	if err != nil {
		return err
	}
	for _, c := range []HashCostError{
		{"argon2id m (KiB)", uint64(p.Memory), uint64(l.Argon2MaxMemoryKiB)},
		{"argon2id t", uint64(p.Time), uint64(l.Argon2MaxTime)},
		{"argon2id p", uint64(p.Threads), uint64(l.Argon2MaxThreads)},
		{"argon2id key bytes", uint64(p.KeyLen), uint64(l.Argon2MaxKeyLen)},
		{"argon2id salt bytes", uint64(p.SaltLen), uint64(l.Argon2MaxSaltLen)},
	} {
		if c.Value > c.Max {
			return &c
		}
	}
	return nil
}

// HashCostError is a hash parameter over its ceiling: which, its value and
// the ceiling. It is ErrHashCost for errors.Is.
type HashCostError struct {
	Param      string
	Value, Max uint64
}

func (e *HashCostError) Error() string {
	return fmt.Sprintf("%v: %s %d > %d", ErrHashCost, e.Param, e.Value, e.Max)
}

// Is makes errors.Is(err, ErrHashCost) true.
func (e *HashCostError) Is(target error) bool { return target == ErrHashCost }

// HashPassword returns the argon2id PHC string of a password:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashPassword(password string, p domain.Argon2Params) string {
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// VerifyPassword checks a password against a PHC string (argon2id, or bcrypt
// for imported accounts) in constant time. needsRehash is true when the
// password is right but its hash was made with other parameters than want.
// A hash over the limits is not computed: err wraps ErrHashCost.
func VerifyPassword(password, phc string, want domain.Argon2Params, limits domain.HashLimits) (ok, needsRehash bool, err error) {
	if err := CheckHash(phc, limits); err != nil {
		return false, false, err
	}
	if isBcrypt(phc) {
		switch err := bcrypt.CompareHashAndPassword([]byte(phc), []byte(password)); {
		case err == nil:
			return true, true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword), errors.Is(err, bcrypt.ErrPasswordTooLong):
			// bcrypt reads at most 72 bytes and refuses more: a longer
			// password cannot be the one this hash was made from.
			return false, false, nil
		default:
			return false, false, fmt.Errorf("bcrypt: %w", err)
		}
	}
	p, salt, key, err := parseArgon2id(phc)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	return true, p.Memory != want.Memory || p.Time != want.Time || p.Threads != want.Threads || uint32(len(key)) != want.KeyLen, nil
}

func parseArgon2id(phc string) (domain.Argon2Params, []byte, []byte, error) {
	var p domain.Argon2Params
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, ErrHashFormat
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("%w: version %q", ErrHashFormat, parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Time == 0 || p.Threads == 0 {
		return p, nil, nil, fmt.Errorf("%w: parameters %q", ErrHashFormat, parts[3])
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) < 16 {
		return p, nil, nil, fmt.Errorf("%w: encoding", ErrHashFormat)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
