// Package secrets keeps every secret out of the stream, the database and the
// logs: passwords become argon2id PHC strings, codes and tokens keyed hashes
// (HMAC-SHA256), and what the notifier must read (a code, an address) is
// sealed with XChaCha20-Poly1305. All keys derive from AUTH_SECRET_KEY, and
// from the keys it replaced (AUTH_SECRET_KEY_PREVIOUS): Keys is a keyring
// whose current key makes every new hash and seal, and whose previous keys
// still verify and open what they made (docs/keys.md).
package secrets

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of AUTH_SECRET_KEY, in bytes.
const KeySize = 32

// idSize is the size of a key id, in bytes (8 hex characters).
const idSize = 4

// Keys is the keyring: the purpose-bound keys derived from the current
// master secret, then from each previous one, most recent first. A leak of
// one purpose's output says nothing about another's. The current key makes
// every new hash, seal and idempotency key; the previous ones only verify
// (the *Hashes methods) and open (Open) what they made before a rotation.
type Keys struct {
	ring []keySet // ring[0] is the current key
	// subjectsMAC, when set (WithSubjectKey), keys the pairwise subjects
	// in place of the current key's "oidc-subject" purpose.
	subjectsMAC *macPool
}

// keySet is the purpose keys of one master secret.
type keySet struct {
	id       [idSize]byte // names the master key in sealed values; derived, never the key
	nirIndex []byte
	codes    []byte
	tokens   []byte
	seal     []byte
	requests []byte
	grants   []byte // seals OpenID Connect grants (oidc.authorize), apart from seal
	subjects []byte // keys the OpenID Connect pairwise subjects

	// The HMACs of the keyed hashes, keyed, ready to reuse (macPool).
	nirIndexMAC, codesMAC, tokensMAC, requestsMAC, subjectsMAC *macPool
}

// macPool keeps HMAC-SHA-256 states under one key for reuse: hmac.New
// allocates two digests and hashes the padded key twice, four times per
// code check (issue 17); a reset state does neither.
type macPool struct{ pool sync.Pool }

// pooledMAC is an HMAC state and scratch space for a length prefix and a
// sum, which would escape to the heap through the hash.Hash interface.
type pooledMAC struct {
	hash.Hash
	buf []byte
	sum []byte
}

func newMACPool(key []byte) *macPool {
	p := &macPool{}
	p.pool.New = func() any {
		return &pooledMAC{Hash: hmac.New(sha256.New, key), buf: make([]byte, 0, 128), sum: make([]byte, 0, sha256.Size)}
	}
	return p
}

func (p *macPool) get() *pooledMAC { return p.pool.Get().(*pooledMAC) }

func (p *macPool) put(m *pooledMAC) {
	m.Reset()
	p.pool.Put(m)
}

// writePart writes "<len>:<part>" (the bytes fmt's "%d:%s" wrote).
func (m *pooledMAC) writePart(part string) {
	m.buf = append(append(strconv.AppendInt(m.buf[:0], int64(len(part)), 10), ':'), part...)
	m.Write(m.buf)
	if cap(m.buf) > 1024 {
		m.buf = make([]byte, 0, 24) // a long part's space is not kept in the pool
	}
}

// hexSum is the hex of the first n bytes of the sum.
func (m *pooledMAC) hexSum(n int) string {
	m.sum = m.Sum(m.sum[:0])
	return hex.EncodeToString(m.sum[:n])
}

// ErrSealed: a sealed value that does not open with this key (tampered, or
// sealed under another key or for another context).
var ErrSealed = errors.New("sealed value does not open")

// NewKeys derives the keyring from the 32-byte current master secret and
// the previous ones (most recent first). Errors: a key of another size
// (saying which: "previous key 2"), or a key given twice (two keys with
// the same key id), which would hide a deployment mistake.
func NewKeys(master []byte, previous ...[]byte) (*Keys, error) {
	k := &Keys{}
	for i, m := range append([][]byte{master}, previous...) {
		name := "current key"
		if i > 0 {
			name = fmt.Sprintf("previous key %d", i)
		}
		ks, err := newKeySet(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for j, other := range k.ring {
			if other.id == ks.id {
				was := "the current key"
				if j > 0 {
					was = fmt.Sprintf("previous key %d", j)
				}
				return nil, fmt.Errorf("%s is %s again (key id %s): give each key once", name, was, ks.idHex())
			}
		}
		k.ring = append(k.ring, ks)
	}
	return k, nil
}

func newKeySet(master []byte) (keySet, error) {
	var ks keySet
	if len(master) != KeySize {
		return ks, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(master))
	}
	derive := func(purpose string, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, master, nil, "ameli-auth/"+purpose, n)
	}
	var err error
	for _, p := range []struct {
		dst  *[]byte
		name string
	}{{&ks.nirIndex, "nir-index"}, {&ks.codes, "codes"}, {&ks.tokens, "tokens"}, {&ks.seal, "seal"}, {&ks.requests, "requests"},
		{&ks.grants, "oidc-grant"}, {&ks.subjects, "oidc-subject"}} {
		if *p.dst, err = derive(p.name, 32); err != nil {
			return ks, fmt.Errorf("derive %s key: %w", p.name, err)
		}
	}
	// The key id is one more HKDF output under its own label: it names the
	// key without telling anything of it or of the other purposes' keys.
	id, err := derive("key-id", idSize)
	if err != nil {
		return ks, fmt.Errorf("derive key id: %w", err)
	}
	copy(ks.id[:], id)
	ks.nirIndexMAC, ks.codesMAC, ks.tokensMAC, ks.requestsMAC = newMACPool(ks.nirIndex), newMACPool(ks.codes), newMACPool(ks.tokens), newMACPool(ks.requests)
	ks.subjectsMAC = newMACPool(ks.subjects)
	return ks, nil
}

func (ks keySet) idHex() string { return hex.EncodeToString(ks.id[:]) }

// ID is the current key's id: 8 hex characters derived from the key (an
// HKDF output under the label "ameli-auth/key-id"), never the key itself.
// It names the key in sealed values, in errors and in docs/keys.md's
// procedure, so operators can tell which key each component holds.
func (k *Keys) ID() string { return k.ring[0].idHex() }

// IDs is the ids of the keyring's keys, current first.
func (k *Keys) IDs() []string {
	out := make([]string, len(k.ring))
	for i, ks := range k.ring {
		out[i] = ks.idHex()
	}
	return out
}

// Rotating tells whether the keyring holds previous keys: only then may a
// presented secret's stored hash be under another key than the current.
func (k *Keys) Rotating() bool { return len(k.ring) > 1 }

// ParseKey decodes AUTH_SECRET_KEY (standard or URL base64, padded or not).
func ParseKey(s string) ([]byte, error) { return decodeKey("AUTH_SECRET_KEY", s) }

// ParseKeys decodes a list of keys, as AUTH_SECRET_KEY_PREVIOUS holds them:
// base64 keys separated by commas or newlines (blank entries skipped), most
// recent first. Errors name the setting and the key's position (1 for the
// first), never the value.
func ParseKeys(setting, s string) ([][]byte, error) {
	var out [][]byte
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if strings.TrimSpace(part) == "" {
			continue
		}
		b, err := decodeKey(fmt.Sprintf("%s: key %d", setting, len(out)+1), part)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func decodeKey(name, s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("%s: want %d bytes once decoded, got %d", name, KeySize, len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: not base64", name)
}

// NewMasterKey returns a fresh random master secret, base64 encoded.
func NewMasterKey() string {
	b := make([]byte, KeySize)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func mac(p *macPool, parts ...string) string {
	m := p.get()
	defer p.put(m)
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ:
		// "<len>:<part>", the bytes fmt's "%d:%s" wrote, without fmt's
		// reflection and allocations (issue 17: a code check hashes four
		// times).
		m.writePart(p)
	}
	return m.hexSum(sha256.Size)
}

// every is f under each key of the ring, current first.
func (k *Keys) every(f func(keySet) string) []string {
	out := make([]string, len(k.ring))
	for i, ks := range k.ring {
		out[i] = f(ks)
	}
	return out
}

// NIRIndexKey is the key of a canonical NIR in the uniqueness index, under
// the current key: 64 hex characters.
func (k *Keys) NIRIndexKey(nir string) string { return mac(k.ring[0].nirIndexMAC, "nir", nir) }

// NIRIndexKeys is the NIR's index key under each key of the ring, current
// first: an account registered before a rotation is indexed under a
// previous key.
func (k *Keys) NIRIndexKeys(nir string) []string {
	return k.every(func(ks keySet) string { return mac(ks.nirIndexMAC, "nir", nir) })
}

// CodeHash is the keyed hash of a code issued for a purpose (a login, a
// password change…) on an account, under the current key. Bound to both,
// so a code cannot be moved.
func (k *Keys) CodeHash(accountID, purpose, code string) string {
	return mac(k.ring[0].codesMAC, accountID, purpose, code)
}

// CodeHashes is CodeHash under each key of the ring, current first: a
// code issued before a rotation is stored under a previous key.
func (k *Keys) CodeHashes(accountID, purpose, code string) []string {
	return k.every(func(ks keySet) string { return mac(ks.codesMAC, accountID, purpose, code) })
}

// TokenHash is the keyed hash of a bearer token of a kind (session,
// device…), under the current key.
func (k *Keys) TokenHash(kind, token string) string { return mac(k.ring[0].tokensMAC, kind, token) }

// TokenHashes is TokenHash under each key of the ring, current first.
func (k *Keys) TokenHashes(kind, token string) []string {
	return k.every(func(ks keySet) string { return mac(ks.tokensMAC, kind, token) })
}

// Match returns, of candidates (one presented secret's hashes under each
// key of the ring, current first), the first equal to one of stored, and
// true; else the current key's (candidates[0]) and false. Comparisons are
// in constant time.
func Match(candidates []string, stored ...string) (string, bool) {
	for _, c := range candidates {
		for _, s := range stored {
			if subtle.ConstantTimeCompare([]byte(c), []byte(s)) == 1 {
				return c, true
			}
		}
	}
	return candidates[0], false
}

// RequestKey is the idempotency key of one request: a keyed hash of its
// subject and its whole body, 32 hex characters, under the current key only
// (a retry that straddles a rotation is another request). It becomes the
// appended event's Nats-Msg-Id, so the same request_id sent with another
// body is another request, never a retry (issue 11, kind 1). Keyed, because
// the body may hold a password or a code and the key is stored in the
// stream.
func (k *Keys) RequestKey(subject string, body []byte) string {
	p := k.ring[0].requestsMAC
	m := p.get()
	defer p.put(m)
	m.writePart(subject)
	m.Write(body)
	return m.hexSum(16)
}

// Seal encrypts plaintext under the current key, bound to context (the
// account id): a sealed value copied to another account does not open.
// The result is "v1." and the base64url (unpadded) of the key id (4
// bytes), the nonce (24) and the ciphertext with its tag (16 more than the
// plaintext). Values sealed before key ids lack the first 4 bytes: Open
// still reads them.
func (k *Keys) Seal(plaintext, context string) string {
	return "v1." + k.sealWith(func(ks keySet) []byte { return ks.seal }, nil, plaintext, context)
}

// sealWith is Seal's body under one purpose's key: the base64url of key
// id, nonce and ciphertext. The nonce is random, or synthetic's (the
// purpose key's) when set.
func (k *Keys) sealWith(purpose func(keySet) []byte, synthetic func(key []byte, plaintext, context string) []byte, plaintext, context string) string {
	ks := k.ring[0]
	aead, _ := chacha20poly1305.NewX(purpose(ks)) // the key size is fixed
	out := make([]byte, idSize+aead.NonceSize(), idSize+aead.NonceSize()+len(plaintext)+aead.Overhead())
	copy(out, ks.id[:])
	nonce := out[idSize:]
	if synthetic != nil {
		copy(nonce, synthetic(purpose(ks), plaintext, context))
	} else {
		rand.Read(nonce)
	}
	out = aead.Seal(out, nonce, []byte(plaintext), []byte(context))
	return base64.RawURLEncoding.EncodeToString(out)
}

// Open decrypts a value sealed by Seal with the same context, under the
// key its key id names if the keyring holds it; a value sealed before key
// ids is tried with every key, current first. Errors wrap ErrSealed; when
// the value names a key id the keyring lacks, the error says which (an id
// only names a key, see ID), so a log tells the key to configure again.
func (k *Keys) Open(sealed, context string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, "v1.")
	if !ok {
		return "", ErrSealed
	}
	return k.openWith(func(ks keySet) []byte { return ks.seal }, raw, context)
}

// openWith is Open's body under one purpose's key, for raw (the base64url
// after the prefix).
func (k *Keys) openWith(purpose func(keySet) []byte, raw, context string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return "", ErrSealed
	}
	open := func(ks keySet, b []byte) (string, bool) {
		aead, _ := chacha20poly1305.NewX(purpose(ks))
		if len(b) < aead.NonceSize()+aead.Overhead() {
			return "", false
		}
		pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(context))
		return string(pt), err == nil
	}
	known := false // the value names a key of the ring
	if len(b) >= idSize {
		for _, ks := range k.ring {
			if subtle.ConstantTimeCompare(ks.id[:], b[:idSize]) == 1 {
				if pt, ok := open(ks, b[idSize:]); ok {
					return pt, nil
				}
				known = true
				break // or a legacy value whose nonce begins like an id: tried below
			}
		}
	}
	for _, ks := range k.ring {
		if pt, ok := open(ks, b); ok {
			return pt, nil
		}
	}
	if !known && len(b) >= idSize {
		return "", fmt.Errorf("%w with keys %s: it names key id %x (unless sealed before key ids)",
			ErrSealed, strings.Join(k.IDs(), ", "), b[:idSize])
	}
	return "", ErrSealed
}

// grantPrefix starts every sealed OpenID Connect grant: another prefix
// than Seal's "v1.", so neither is ever taken for the other.
const grantPrefix = "g1."

// SealGrant seals an OpenID Connect grant (what oidc.authorize hands the
// provider: account, session, scopes...) under the current key's
// "oidc-grant" purpose (HKDF label ameli-auth/oidc-grant), bound to
// context. "g1." and the base64url of key id, nonce and ciphertext, as
// Seal, but deterministic: the nonce is synthetic (an HMAC-SHA256 of
// context and plaintext under a key derived from the grant key, as
// RFC 5297's SIV construction does), so a retried oidc.authorize answered
// from the recorded fact gets the very bytes of the first reply. That
// tells only that two grants are equal, and grants of distinct
// authorizations differ (their times and sessions do). A leak of the grant key opens no address or code, and the seal
// key opens no grant. Previous keys of the ring open grants they sealed
// (OpenGrant), so a rotation does not void the grants in flight.
func (k *Keys) SealGrant(plaintext, context string) string {
	return grantPrefix + k.sealWith(func(ks keySet) []byte { return ks.grants }, syntheticNonce, plaintext, context)
}

// syntheticNonce is a deterministic XChaCha20 nonce for plaintext under
// context: the first 24 bytes of HMAC-SHA256 under a key derived from the
// sealing key (never the sealing key itself).
func syntheticNonce(key []byte, plaintext, context string) []byte {
	nk := hmac.New(sha256.New, key)
	nk.Write([]byte("ameli-auth/synthetic-nonce"))
	m := hmac.New(sha256.New, nk.Sum(nil))
	fmt.Fprintf(m, "%d:%s", len(context), context)
	m.Write([]byte(plaintext))
	return m.Sum(nil)[:chacha20poly1305.NonceSizeX]
}

// OpenGrant opens a grant of SealGrant sealed with the same context,
// under the key its id names. Errors wrap ErrSealed.
func (k *Keys) OpenGrant(sealed, context string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, grantPrefix)
	if !ok || len(raw) > 4096 {
		return "", ErrSealed
	}
	return k.openWith(func(ks keySet) []byte { return ks.grants }, raw, context)
}

// PairwiseSubject is the OpenID Connect pairwise subject of an account for
// a sector identifier (OIDC Core 1.0 section 8.1: a value per sector that
// the relying parties of different sectors cannot correlate, computed
// here as HMAC-SHA256 over the length-prefixed sector and account id): 64
// hex characters. Its key is the subject key of WithSubjectKey
// (AUTH_OIDC_SUBJECT_KEY) when set, else the current master key's
// "oidc-subject" purpose (HKDF label ameli-auth/oidc-subject): then the
// subject is stable as long as AUTH_SECRET_KEY is, and a rotation of
// AUTH_SECRET_KEY changes every subject (docs/oidc-commands.md says so).
// Our choice: a key, no salt table to keep.
func (k *Keys) PairwiseSubject(sector, accountID string) string {
	p := k.ring[0].subjectsMAC
	if k.subjectsMAC != nil {
		p = k.subjectsMAC
	}
	return mac(p, "oidc-sub", sector, accountID)
}

// WithSubjectKey returns the keyring with the pairwise subjects keyed by
// a key of their own (32 bytes, AUTH_OIDC_SUBJECT_KEY), which the
// rotations of the master key leave alone: HKDF of it under the label
// ameli-auth/oidc-subject, as the derived default.
func (k *Keys) WithSubjectKey(key []byte) *Keys {
	sub, err := hkdf.Key(sha256.New, key, nil, "ameli-auth/oidc-subject", 32)
	if err != nil {
		panic(err) // 32 bytes of SHA-256 HKDF never fail
	}
	return &Keys{ring: k.ring, subjectsMAC: newMACPool(sub)}
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
