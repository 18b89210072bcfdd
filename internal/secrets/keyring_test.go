package secrets

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

var (
	keyA = []byte("0123456789abcdef0123456789abcdef")
	keyB = []byte("another key of thirty-two bytes!")
	keyC = []byte("a third key, 32 bytes long......")
)

func ring(t *testing.T, current []byte, previous ...[]byte) *Keys {
	t.Helper()
	k, err := NewKeys(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// legacySealed was sealed by the code before key ids (commit ae8384d) with
// keyA for the context legacyContext: what the events recorded until then hold.
const (
	legacySealed  = "v1.97STMlWsYIo8vNSPMyBl9dZnuvUgHklUwC8SNo72BSl36N5qEay8XT_GTSClFvPqWjIclIZef0o"
	legacyContext = "01GNZ1000000000000000000AA"
	legacyPlain   = "valerie@yahoo.fr"
	// legacySessionHash is TokenHash("session", "tok") under keyA by that code.
	legacySessionHash = "09012d34674d72b5cf11b7cbf4af973903beb52e0b7fc09a3f0e095b767caa8c"
)

// Which keyring opens a value sealed by which: the rotation's table. A
// value opens with any keyring that holds the key it was sealed under,
// current or previous, and with no other.
func TestOpenAcrossRotations(t *testing.T) {
	onlyA, onlyB := ring(t, keyA), ring(t, keyB)
	bThenA, aThenB := ring(t, keyB, keyA), ring(t, keyA, keyB)
	cThenBA := ring(t, keyC, keyB, keyA)
	rows := []struct {
		name   string
		sealer *Keys
		opener *Keys
		opens  bool
	}{
		{"same_key", onlyA, onlyA, true},
		{"sealed_under_A_opened_after_rotation_to_B", onlyA, bThenA, true},
		{"sealed_under_A_opened_two_rotations_later", onlyA, cThenBA, true},
		{"sealed_after_rotation_opened_by_a_component_told_of_B_first", bThenA, aThenB, true},
		{"sealed_under_B_opened_by_the_same_ring", bThenA, bThenA, true},
		{"sealed_under_A_once_A_is_dropped", onlyA, onlyB, false},
		{"sealed_under_B_by_a_component_still_on_A_alone", bThenA, onlyA, false},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			s := r.sealer.Seal("123456", "acc1")
			got, err := r.opener.Open(s, "acc1")
			if r.opens && (err != nil || got != "123456") {
				t.Fatalf("open = %q, %v; want the plaintext", got, err)
			}
			if !r.opens && (err == nil || !errors.Is(err, ErrSealed)) {
				t.Fatalf("open = %q, %v; want ErrSealed", got, err)
			}
			if _, err := r.opener.Open(s, "acc2"); r.opens && err == nil {
				t.Fatal("opened for another context")
			}
		})
	}
}

// Values sealed before key ids (the events already recorded) still open,
// with the key as current or as previous, and not without it.
func TestOpenLegacyValues(t *testing.T) {
	for _, k := range []*Keys{ring(t, keyA), ring(t, keyB, keyA), ring(t, keyC, keyB, keyA), ring(t, keyA, keyB)} {
		if got, err := k.Open(legacySealed, legacyContext); err != nil || got != legacyPlain {
			t.Fatalf("ring %v: open legacy = %q, %v", k.IDs(), got, err)
		}
	}
	if _, err := ring(t, keyB).Open(legacySealed, legacyContext); !errors.Is(err, ErrSealed) {
		t.Fatalf("legacy value opened without its key: %v", err)
	}
	if _, err := ring(t, keyA).Open(legacySealed, "another"); !errors.Is(err, ErrSealed) {
		t.Fatalf("legacy value opened for another context: %v", err)
	}
	// The hashes under the current key are the ones made before the keyring.
	if h := ring(t, keyA).TokenHash("session", "tok"); h != legacySessionHash {
		t.Fatalf("TokenHash changed: %s", h)
	}
}

// A value sealed under a key the ring lacks says which key id it names,
// so the log tells the operator which key to configure again.
func TestOpenNamesAMissingKey(t *testing.T) {
	s := ring(t, keyA).Seal("x", "c")
	_, err := ring(t, keyB).Open(s, "c")
	if !errors.Is(err, ErrSealed) || !strings.Contains(err.Error(), ring(t, keyA).ID()) {
		t.Fatalf("err = %v; want ErrSealed naming key id %s", err, ring(t, keyA).ID())
	}
	if strings.Contains(err.Error(), string(keyA)) || strings.Contains(err.Error(), string(keyB)) {
		t.Fatal("the error shows a key")
	}
	// Tampered: any byte changed fails, the key id included.
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, "v1."))
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		if _, err := ring(t, keyA).Open("v1."+base64.RawURLEncoding.EncodeToString(b), "c"); err == nil {
			t.Fatalf("byte %d changed and the value still opens", i)
		}
	}
	for _, bad := range []string{"", "v1.", "v1.!!", "v2.abcd", "v1.AAAA"} {
		if _, err := ring(t, keyA).Open(bad, "c"); !errors.Is(err, ErrSealed) {
			t.Fatalf("Open(%q) = %v, want ErrSealed", bad, err)
		}
	}
}

// New values are sealed under the current key and name it; they keep the
// "v1." + base64url shape the event schemas check.
func TestSealUsesTheCurrentKey(t *testing.T) {
	k := ring(t, keyB, keyA)
	s := k.Seal("123456", "acc1")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, "v1."))
	if !strings.HasPrefix(s, "v1.") || err != nil || strings.ContainsAny(s[3:], ".=+/") {
		t.Fatalf("sealed value %q: not v1. + base64url", s)
	}
	if hex.EncodeToString(raw[:idSize]) != k.ID() || k.ID() != ring(t, keyB).ID() {
		t.Fatalf("sealed value names key %x, want the current %s", raw[:idSize], k.ID())
	}
	if _, err := ring(t, keyA).Open(s, "acc1"); err == nil {
		t.Fatal("a new value opened with the previous key alone: it was not sealed under the current key")
	}
}

// Hashes: the current key makes the single hash; the *Hashes lists put it
// first and the previous keys' after, so a secret hashed before the
// rotation is recognised and a new one always takes the current key.
func TestHashesAcrossRotation(t *testing.T) {
	a, ba := ring(t, keyA), ring(t, keyB, keyA)
	for _, c := range []struct {
		name     string
		old, cur string
		list     []string
	}{
		{"nir", a.NIRIndexKey("1"), ba.NIRIndexKey("1"), ba.NIRIndexKeys("1")},
		{"code", a.CodeHash("acc", "login:l", "123456"), ba.CodeHash("acc", "login:l", "123456"), ba.CodeHashes("acc", "login:l", "123456")},
		{"token", a.TokenHash("session", "t"), ba.TokenHash("session", "t"), ba.TokenHashes("session", "t")},
	} {
		if c.old == c.cur {
			t.Fatalf("%s: the rotation did not change the hash", c.name)
		}
		if len(c.list) != 2 || c.list[0] != c.cur || c.list[1] != c.old {
			t.Fatalf("%s: list %v, want [current previous]", c.name, c.list)
		}
		if got, ok := Match(c.list, "other", c.old); !ok || got != c.old {
			t.Fatalf("%s: Match found %q %v, want the stored previous-key hash", c.name, got, ok)
		}
		if got, ok := Match(c.list, "other"); ok || got != c.cur {
			t.Fatalf("%s: Match without a stored hash = %q %v, want the current key's", c.name, got, ok)
		}
		if got, _ := Match(c.list, c.cur, c.old); got != c.cur {
			t.Fatalf("%s: Match prefers %q over the current key's", c.name, got)
		}
	}
	if a.RequestKey("s", []byte("b")) == ba.RequestKey("s", []byte("b")) {
		t.Fatal("the request key does not follow the current key")
	}
	if a.Rotating() || !ba.Rotating() {
		t.Fatal("Rotating")
	}
}

// A key id is derived: it never shows the key, in any encoding, and two
// keys have two ids.
func TestKeyIDRevealsNothing(t *testing.T) {
	for _, m := range [][]byte{keyA, keyB, keyC, make([]byte, KeySize)} {
		id := ring(t, m).ID()
		if len(id) != 8 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("key id %q: want 8 hex characters", id)
		}
		for _, enc := range []string{string(m), hex.EncodeToString(m), base64.StdEncoding.EncodeToString(m), base64.RawURLEncoding.EncodeToString(m)} {
			if strings.Contains(enc, id) {
				t.Fatalf("key id %s appears in the key (%s)", id, enc)
			}
		}
	}
	if ring(t, keyA).ID() == ring(t, keyB).ID() {
		t.Fatal("two keys, one id")
	}
	if got := ring(t, keyB, keyA).IDs(); len(got) != 2 || got[0] != ring(t, keyB).ID() || got[1] != ring(t, keyA).ID() {
		t.Fatalf("IDs = %v", got)
	}
}

// Keyring errors: which key is at fault, never its value.
func TestKeyringErrors(t *testing.T) {
	if _, err := NewKeys(keyA, keyB, keyA); err == nil || !strings.Contains(err.Error(), "previous key 2 is the current key again") {
		t.Fatalf("a key given twice: %v", err)
	}
	if _, err := NewKeys(keyA, keyB[:31]); err == nil || !strings.Contains(err.Error(), "previous key 1") {
		t.Fatalf("a short previous key: %v", err)
	}
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	rows := []struct {
		in   string
		n    int
		want string // in the error; "" for none
	}{
		{"", 0, ""},
		{" \n ,", 0, ""},
		{b64(keyA), 1, ""},
		{b64(keyA) + "," + b64(keyB), 2, ""},
		{b64(keyA) + "\n" + b64(keyB) + "\n", 2, ""},
		{b64(keyA) + " , " + base64.RawURLEncoding.EncodeToString(keyB), 2, ""},
		{b64(keyA) + ",not a key!", 0, "AUTH_SECRET_KEY_PREVIOUS: key 2: not base64"},
		{b64(keyA[:16]), 0, "AUTH_SECRET_KEY_PREVIOUS: key 1: want 32 bytes once decoded, got 16"},
	}
	for _, r := range rows {
		got, err := ParseKeys("AUTH_SECRET_KEY_PREVIOUS", r.in)
		switch {
		case r.want == "" && (err != nil || len(got) != r.n):
			t.Errorf("ParseKeys(%q) = %d keys, %v; want %d", r.in, len(got), err, r.n)
		case r.want != "" && (err == nil || err.Error() != r.want):
			t.Errorf("ParseKeys(%q) error %v; want %q", r.in, err, r.want)
		}
		if err != nil && strings.Contains(err.Error(), b64(keyA)) {
			t.Errorf("the error shows a key: %v", err)
		}
	}
}
