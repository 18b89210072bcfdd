package secrets

import (
	"errors"
	"testing"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// fuzzLimits keep every hash the fuzzer may compute tiny: argon2id m <= 64
// KiB, t = 1, one lane; bcrypt at its minimum cost (4).
var fuzzLimits = domain.HashLimits{Argon2MaxMemoryKiB: 64, Argon2MaxTime: 1, Argon2MaxThreads: 1,
	Argon2MaxKeyLen: 64, Argon2MaxSaltLen: 64, BcryptMaxCost: 4}

// FuzzCheckHash: reading a stored hash (it may come from an import file)
// never panics; a refusal is ErrHashFormat or ErrHashCost; a hash accepted
// within fuzzLimits can be verified (the only costly call, kept tiny by
// the limits) without an error, and the verdict is the same twice.
func FuzzCheckHash(f *testing.F) {
	cheap := domain.Argon2Params{Memory: 8, Time: 1, Threads: 1, KeyLen: 16, SaltLen: 8}
	for _, s := range []string{
		HashPassword("motdepasse", cheap),
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1048576,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=256$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=-1,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$2a$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2b$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2y$12$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2a$99$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$2a$04$short", "$2a$", "", "$", "$$$$$", "plain text", "$argon2id$v=19$m=64,t=1,p=1$\xff$\xff",
	} {
		f.Add(s, "motdepasse")
	}
	f.Fuzz(func(t *testing.T, phc, password string) {
		err := CheckHash(phc, fuzzLimits)
		if err != nil {
			if !errors.Is(err, ErrHashFormat) && !errors.Is(err, ErrHashCost) {
				t.Fatalf("CheckHash(%q) = %v: neither ErrHashFormat nor ErrHashCost", phc, err)
			}
			if ok, _, verr := VerifyPassword(password, phc, domain.Argon2Params{}, fuzzLimits); ok || verr == nil {
				t.Fatalf("VerifyPassword accepts %q that CheckHash refuses (%v): ok=%v err=%v", phc, err, ok, verr)
			}
			return
		}
		if len(password) > 256 {
			password = password[:256] // the cost is the hash's, not the password's; keep runs fast
		}
		ok, rehash, err := VerifyPassword(password, phc, domain.Argon2Params{}, fuzzLimits)
		if err != nil {
			t.Fatalf("VerifyPassword on %q that CheckHash accepts: %v", phc, err)
		}
		ok2, rehash2, _ := VerifyPassword(password, phc, domain.Argon2Params{}, fuzzLimits)
		if ok != ok2 || rehash != rehash2 {
			t.Fatalf("VerifyPassword(%q, %q) is not deterministic", password, phc)
		}
		if rehash && !ok {
			t.Fatalf("needsRehash without a right password for %q", phc)
		}
	})
}
