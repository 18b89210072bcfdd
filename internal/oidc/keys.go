package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Keys are the provider's signing keys: Current signs the id_tokens and
// access tokens; Previous are the keys it replaced, still published in
// the JWKS so that what they signed verifies until it expires (rotation:
// docs/oidc.md). ES256 (P-256) or RS256 (RSA of 2048 bits or more).
type Keys struct {
	Current  *signingKey
	Previous []*signingKey
}

type signingKey struct {
	id     string
	alg    jose.SignatureAlgorithm
	signer crypto.Signer
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.signer }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is a key of the JWKS (op.Key).
type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return p.k.alg }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return p.k.signer.Public() }

func (ks *Keys) published() []op.Key {
	out := []op.Key{publicKey{ks.Current}}
	for _, k := range ks.Previous {
		out = append(out, publicKey{k})
	}
	return out
}

// ParseKeys reads PEM private keys (PKCS#8 "PRIVATE KEY", "EC PRIVATE
// KEY" or "RSA PRIVATE KEY"), each file or value possibly holding several:
// the first key of all signs, the others are previous keys. The kid of a
// key is its JWK thumbprint (RFC 7638), so every replica names it alike.
func ParseKeys(pems ...[]byte) (*Keys, error) {
	var all []*signingKey
	for i, data := range pems {
		rest := data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			k, err := parseKey(b)
			if err != nil {
				return nil, fmt.Errorf("oidc keys: PEM %d: %w", i+1, err)
			}
			all = append(all, k)
		}
	}
	if len(all) == 0 {
		return nil, errors.New("oidc keys: no PEM private key found")
	}
	return &Keys{Current: all[0], Previous: all[1:]}, nil
}

func parseKey(b *pem.Block) (*signingKey, error) {
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("a %q block is not a private key", b.Type)
	}
	if err != nil {
		return nil, err
	}
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("an EC key must be on P-256 (ES256)")
		}
		alg = jose.ES256
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("an RSA key must have 2048 bits or more (RS256)")
		}
		alg = jose.RS256
	default:
		return nil, fmt.Errorf("a %T is neither ES256 nor RS256", key)
	}
	signer := key.(crypto.Signer)
	tp, err := (&jose.JSONWebKey{Key: signer.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &signingKey{id: base64.RawURLEncoding.EncodeToString(tp), alg: alg, signer: signer}, nil
}

// ReadKeyFiles reads the PEM files of AUTH_OIDC_KEYS, the first one's key
// signing.
func ReadKeyFiles(paths []string) (*Keys, error) {
	var pems [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("oidc keys (AUTH_OIDC_KEYS): %w", err)
		}
		pems = append(pems, b)
	}
	return ParseKeys(pems...)
}

// KV keys of the keys bucket: "current" holds the signing key's PEM,
// "previous" the PEM of the keys it replaced (several blocks).
const (
	kvKeyCurrent  = "current"
	kvKeyPrevious = "previous"
)

// LoadKeysKV reads the keys from the bucket KeysBucket. With generate (dev
// mode only) and no key there, it makes an ES256 key and stores it, once:
// the replicas and the next starts read the same. Without generate, no
// key is an error: production never signs with a key made at start.
func LoadKeysKV(ctx context.Context, js jetstream.JetStream, generate bool) (*Keys, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: KeysBucket, History: 5, Storage: jetstream.FileStorage,
		Description: "OpenID Connect signing keys (PEM): current, previous"})
	if err != nil {
		return nil, fmt.Errorf("oidc keys: bucket %s: %w", KeysBucket, err)
	}
	cur, err := kv.Get(ctx, kvKeyCurrent)
	if errors.Is(err, jetstream.ErrKeyNotFound) && generate {
		pemKey, gerr := generateES256()
		if gerr != nil {
			return nil, gerr
		}
		if _, cerr := kv.Create(ctx, kvKeyCurrent, pemKey); cerr != nil && !errors.Is(cerr, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("oidc keys: store the dev key: %w", cerr)
		}
		cur, err = kv.Get(ctx, kvKeyCurrent) // another replica may have stored first
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("oidc keys: no key %q in bucket %s and no AUTH_OIDC_KEYS: put a PEM key there (docs/oidc.md, Keys)", kvKeyCurrent, KeysBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("oidc keys: read bucket %s: %w", KeysBucket, err)
	}
	pems := [][]byte{cur.Value()}
	if prev, err := kv.Get(ctx, kvKeyPrevious); err == nil {
		pems = append(pems, prev.Value())
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("oidc keys: read bucket %s: %w", KeysBucket, err)
	}
	return ParseKeys(pems...)
}

func generateES256() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
