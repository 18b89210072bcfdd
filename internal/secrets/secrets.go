// Package secrets keeps every secret out of the stream, the database and the
// logs: passwords become argon2id PHC strings, codes and tokens keyed hashes
// (HMAC-SHA256), and what the notifier must read (a code, an address) is
// sealed with XChaCha20-Poly1305. All keys derive from AUTH_SECRET_KEY.
package secrets

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of AUTH_SECRET_KEY, in bytes.
const KeySize = 32

// Keys are the purpose-bound keys derived from the master secret: a leak of
// one purpose's output says nothing about another's.
type Keys struct {
	nirIndex []byte
	codes    []byte
	tokens   []byte
	seal     []byte
	requests []byte
}

// ErrSealed: a sealed value that does not open with this key (tampered, or
// sealed under another key or for another context).
var ErrSealed = errors.New("sealed value does not open")

// NewKeys derives the keys from the 32-byte master secret.
func NewKeys(master []byte) (*Keys, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(master))
	}
	derive := func(purpose string) ([]byte, error) {
		return hkdf.Key(sha256.New, master, nil, "ameli-auth/"+purpose, 32)
	}
	var k Keys
	var err error
	for _, p := range []struct {
		dst  *[]byte
		name string
	}{{&k.nirIndex, "nir-index"}, {&k.codes, "codes"}, {&k.tokens, "tokens"}, {&k.seal, "seal"}, {&k.requests, "requests"}} {
		if *p.dst, err = derive(p.name); err != nil {
			return nil, fmt.Errorf("derive %s key: %w", p.name, err)
		}
	}
	return &k, nil
}

// ParseKey decodes AUTH_SECRET_KEY (standard or URL base64).
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("AUTH_SECRET_KEY: want %d bytes once decoded, got %d", KeySize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("AUTH_SECRET_KEY: not base64")
}

// NewMasterKey returns a fresh random master secret, base64 encoded.
func NewMasterKey() string {
	b := make([]byte, KeySize)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func mac(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(m, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(m.Sum(nil))
}

// NIRIndexKey is the key of a canonical NIR in the uniqueness index.
func (k *Keys) NIRIndexKey(nir string) string { return mac(k.nirIndex, "nir", nir) }

// CodeHash is the keyed hash of a code issued for a purpose (a login, a
// password change…) on an account. Bound to both, so a code cannot be moved.
func (k *Keys) CodeHash(accountID, purpose, code string) string {
	return mac(k.codes, accountID, purpose, code)
}

// TokenHash is the keyed hash of a bearer token of a kind (session, device…).
func (k *Keys) TokenHash(kind, token string) string { return mac(k.tokens, kind, token) }

// RequestKey is the idempotency key of one request: a keyed hash of its
// subject and its whole body, 32 hex characters. It becomes the appended
// event's Nats-Msg-Id, so the same request_id sent with another body is
// another request, never a retry (issue 11, kind 1). Keyed, because the
// body may hold a password or a code and the key is stored in the stream.
func (k *Keys) RequestKey(subject string, body []byte) string {
	m := hmac.New(sha256.New, k.requests)
	fmt.Fprintf(m, "%d:%s", len(subject), subject)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Seal encrypts plaintext for the holders of the key, bound to context
// (the account id): a sealed value copied to another account does not open.
func (k *Keys) Seal(plaintext, context string) string {
	aead, _ := chacha20poly1305.NewX(k.seal) // the key size is fixed
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out := aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
	return "v1." + base64.RawURLEncoding.EncodeToString(out)
}

// Open decrypts a value sealed by Seal with the same context.
func (k *Keys) Open(sealed, context string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, "v1.")
	if !ok {
		return "", ErrSealed
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	aead, _ := chacha20poly1305.NewX(k.seal)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return "", ErrSealed
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(context))
	if err != nil {
		return "", ErrSealed
	}
	return string(pt), nil
}

// NewCode returns a uniformly random code of n decimal digits.
func NewCode(n int) string {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return fmt.Sprintf("%0*d", n, v)
}

// NewToken returns 32 random bytes, URL-safe base64: an unguessable bearer token.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
