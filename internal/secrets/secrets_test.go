package secrets

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ameli-auth/authsvc/internal/domain"
)

var cheap = domain.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

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
	if ok, rehash, err := VerifyPassword("correct horse", h, cheap); !ok || rehash || err != nil {
		t.Fatalf("right password: ok=%v rehash=%v err=%v", ok, rehash, err)
	}
	if ok, _, err := VerifyPassword("wrong horse", h, cheap); ok || err != nil {
		t.Fatalf("wrong password accepted: %v %v", ok, err)
	}
	stronger := cheap
	stronger.Memory = 128
	if ok, rehash, _ := VerifyPassword("correct horse", h, stronger); !ok || !rehash {
		t.Fatalf("parameter change must ask a rehash: ok=%v rehash=%v", ok, rehash)
	}
	if _, _, err := VerifyPassword("x", "$argon2id$garbage", cheap); err == nil {
		t.Fatal("garbage hash accepted")
	}
	b, _ := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	if ok, rehash, err := VerifyPassword("imported", string(b), cheap); !ok || !rehash || err != nil {
		t.Fatalf("bcrypt import: ok=%v rehash=%v err=%v", ok, rehash, err)
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
