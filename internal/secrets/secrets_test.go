package secrets

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ameli-auth/authsvc/internal/domain"
)

var cheap = domain.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

var limits = domain.DefaultHashLimits()

func testKeys(t *testing.T) *Keys {
	t.Helper()
	k, err := NewKeys(make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPasswordHashing(t *testing.T) {
	h := HashPassword("correct horse", cheap)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(h, "correct") {
		t.Fatalf("unexpected PHC string %q", h)
	}
	if ok, rehash, err := VerifyPassword("correct horse", h, cheap, limits); !ok || rehash || err != nil {
		t.Fatalf("right password: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	if ok, _, err := VerifyPassword("wrong horse", h, cheap, limits); ok || err != nil {
		t.Fatalf("wrong password accepted: %v %v", ok, err)
	}
	stronger := cheap
	stronger.Memory = 128
	if ok, rehash, _ := VerifyPassword("correct horse", h, stronger, limits); !ok || !rehash {
		t.Fatalf("parameter change must ask a rehash: ok=%v rehash=%v", ok, rehash)
	}
	if _, _, err := VerifyPassword("x", "$argon2id$garbage", cheap, limits); err == nil {
		t.Fatal("garbage hash accepted")
	}
	b, _ := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	if ok, rehash, err := VerifyPassword("imported", string(b), cheap, limits); !ok || !rehash || err != nil {
		t.Fatalf("bcrypt import: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
}

// A hash's cost comes from the hash itself, which arrives from outside: one
// row per ceiling and per side of it (issue 11, kind 3). Over a ceiling,
// CheckHash refuses and VerifyPassword refuses without computing (a 1 GiB
// argon2id would take seconds and the memory of the test run).
func TestHashCostCeilings(t *testing.T) {
	salt := "c2FsdHNhbHRzYWx0c2FsdA"                     // 16 bytes
	key := "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U" // 32 bytes
	argon := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	long := strings.Repeat("QUFB", 22) // 66 bytes
	bc := func(cost int) string {
		// A bcrypt hash's cost is its text: no need to compute one.
		return fmt.Sprintf("$2b$%02d$", cost) + strings.Repeat("a", 53)
	}
	rows := []struct {
		name string
		phc  string
		want error // nil, ErrHashCost or ErrHashFormat
	}{
		{"argon2id_at_every_ceiling", argon("m=65536,t=10,p=4"), nil},
		{"argon2id_1_GiB_memory", argon("m=1048576,t=1,p=1"), ErrHashCost},
		{"argon2id_memory_one_KiB_over", argon("m=65537,t=1,p=1"), ErrHashCost},
		{"argon2id_11_passes", argon("m=1024,t=11,p=1"), ErrHashCost},
		{"argon2id_5_lanes", argon("m=1024,t=1,p=5"), ErrHashCost},
		{"argon2id_66_byte_key", "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + long[:87] + "Q", ErrHashCost},
		{"argon2id_66_byte_salt", "$argon2id$v=19$m=1024,t=1,p=1$" + long + "$" + key, ErrHashCost},
		{"argon2id_no_passes", argon("m=1024,t=0,p=1"), ErrHashFormat},
		{"argon2id_memory_overflowing_uint32", argon("m=4294967296,t=1,p=1"), ErrHashFormat},
		{"bcrypt_cost_14", bc(14), nil},
		{"bcrypt_cost_15", bc(15), ErrHashCost},
		{"bcrypt_cost_31", bc(31), ErrHashCost},
		{"bcrypt_truncated", bc(10)[:40], ErrHashFormat},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			err := CheckHash(r.phc, limits)
			if r.want == nil && err != nil || r.want != nil && !errors.Is(err, r.want) {
				t.Fatalf("CheckHash = %v, want %v", err, r.want)
			}
			if r.want == nil {
				return
			}
			ok, _, err := VerifyPassword("any", r.phc, cheap, limits)
			if ok || !errors.Is(err, r.want) {
				t.Fatalf("VerifyPassword = %v, %v; want refused with %v", ok, err, r.want)
			}
		})
	}
	// Both profiles hash within their own ceilings.
	for _, p := range []domain.Policy{domain.SeedPolicy(), domain.StrictPolicy()} {
		if err := CheckHash(HashPassword("x", p.Argon2), p.HashLimits); err != nil {
			t.Errorf("%s profile's own hash: %v", p.Name, err)
		}
	}
}

// bcrypt reads at most 72 bytes: a longer password is a wrong one, not an
// internal error.
func TestBcryptLongPasswordIsWrong(t *testing.T) {
	b, _ := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	if ok, _, err := VerifyPassword(strings.Repeat("x", 100), string(b), cheap, limits); ok || err != nil {
		t.Fatalf("100-byte password on a bcrypt hash: ok=%v err=%v; want a plain refusal", ok, err)
	}
}

func TestSealing(t *testing.T) {
	k := testKeys(t)
	s := k.Seal("123456", "acc1")
	if strings.Contains(s, "123456") {
		t.Fatal("sealed value shows the plaintext")
	}
	if got, err := k.Open(s, "acc1"); err != nil || got != "123456" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := k.Open(s, "acc2"); err == nil {
		t.Fatal("a value sealed for one account opened for another")
	}
	other, _ := NewKeys([]byte(strings.Repeat("k", KeySize)))
	if _, err := other.Open(s, "acc1"); err == nil {
		t.Fatal("opened with another key")
	}
	if _, err := k.Open(s[:len(s)-2]+"AA", "acc1"); err == nil {
		t.Fatal("tampered value opened")
	}
}

func TestHashesAreKeyedAndBound(t *testing.T) {
	k := testKeys(t)
	if k.CodeHash("a", "login", "123456") == k.CodeHash("b", "login", "123456") {
		t.Fatal("code hash not bound to the account")
	}
	if k.CodeHash("a", "l1", "123456") == k.CodeHash("a", "l2", "123456") {
		t.Fatal("code hash not bound to the purpose")
	}
	if k.TokenHash("session", "t") == k.TokenHash("device", "t") {
		t.Fatal("token hash not bound to its kind")
	}
	if k.NIRIndexKey("1") == k.CodeHash("", "", "1") {
		t.Fatal("purposes share a key")
	}
}

func TestCodesAreUniformDigits(t *testing.T) {
	seen := map[byte]int{}
	for i := 0; i < 2000; i++ {
		c := NewCode(6)
		if len(c) != 6 || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("bad code %q", c)
		}
		seen[c[0]]++
	}
	if len(seen) != 10 {
		t.Fatalf("first digit takes only %d values over 2000 codes", len(seen))
	}
}

// OpenID Connect grants (issue 18): sealed under their own key, opened
// under a previous key after a rotation, never taken for a Seal value or
// the reverse, deterministic for one plaintext; pairwise subjects differ
// per sector and account and stay the same for one pair.
func TestGrantsAndPairwiseSubjects(t *testing.T) {
	a, b := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	ka, _ := NewKeys(a)
	g := ka.SealGrant(`{"a":"x"}`, "ctx")
	if !strings.HasPrefix(g, "g1.") || g != ka.SealGrant(`{"a":"x"}`, "ctx") || g == ka.SealGrant(`{"a":"y"}`, "ctx") {
		t.Fatalf("grant %q: want g1., deterministic per plaintext", g)
	}
	if pt, err := ka.OpenGrant(g, "ctx"); err != nil || pt != `{"a":"x"}` {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := ka.OpenGrant(g, "other"); !errors.Is(err, ErrSealed) {
		t.Fatalf("another context opened: %v", err)
	}
	if _, err := ka.OpenGrant("g1."+strings.TrimPrefix(ka.Seal(`{"a":"x"}`, "ctx"), "v1."), "ctx"); !errors.Is(err, ErrSealed) {
		t.Fatal("a value of Seal opened as a grant")
	}
	if _, err := ka.Open("v1."+strings.TrimPrefix(g, "g1."), "ctx"); !errors.Is(err, ErrSealed) {
		t.Fatal("a grant opened with Open")
	}
	rotated, _ := NewKeys(b, a)
	if pt, err := rotated.OpenGrant(g, "ctx"); err != nil || pt != `{"a":"x"}` {
		t.Fatalf("after a rotation: %q %v", pt, err)
	}
	if onlyB, _ := NewKeys(b); onlyB.PairwiseSubject("s", "acc") == ka.PairwiseSubject("s", "acc") {
		t.Fatal("the subject does not depend on the key")
	}
	pinned := []byte("subject-key-subject-key-subject!")
	if ka.WithSubjectKey(pinned).PairwiseSubject("s", "acc") != rotated.WithSubjectKey(pinned).PairwiseSubject("s", "acc") ||
		ka.WithSubjectKey(pinned).PairwiseSubject("s", "acc") == ka.PairwiseSubject("s", "acc") {
		t.Fatal("a subject key of its own must survive a rotation of the master key")
	}
	s := ka.PairwiseSubject("sector", "acc")
	if len(s) != 64 || s != ka.PairwiseSubject("sector", "acc") || s == ka.PairwiseSubject("sector2", "acc") ||
		s == ka.PairwiseSubject("sector", "acc2") || s == ka.PairwiseSubject("sectora", "cc") {
		t.Fatalf("pairwise subjects: %q", s)
	}
}
