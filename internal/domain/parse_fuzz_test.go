package domain

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the parsers of what people type (docs/fuzzing.md). Run
// with scripts/fuzz, or `go test -fuzz=^FuzzParseNIR$ ./internal/domain`.

// FuzzParseNIR: ParseNIR never panics; what it accepts is a canonical
// 13-character NIR that parses to itself, and that NIR with its key (15
// characters, spaced as on a card or not) parses to the same NIR.
func FuzzParseNIR(f *testing.F) {
	for _, s := range []string{
		"1840375123456", "1 84 03 75 123 456 12", "184037512345612", "2 84 03 2A 123 456", "284032b123456",
		"1840375123456\u00a0", "\t1840375123456", "", " ", "18403751234567", "1840375123456789",
		"9840375123456", "18403A5123456", "1840322A12345", "2A40375123456", "１８４０３７５１２３４５６",
		"1840375123456\x00", "18403751234\xff\xfe", "ﬀ40375123456", "1840375123456ǅ", "ſ840375123456",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNIR(s)
		if err != nil {
			if n != "" {
				t.Fatalf("ParseNIR(%q) = %q with error %v", s, n, err)
			}
			return
		}
		if len(n) != 13 || !utf8.ValidString(n) {
			t.Fatalf("ParseNIR(%q) = %q: not 13 bytes", s, n)
		}
		again, err := ParseNIR(n)
		if err != nil || again != n {
			t.Fatalf("ParseNIR(%q) = %q, but ParseNIR(%q) = %q, %v: not idempotent", s, n, n, again, err)
		}
		with := fmt.Sprintf("%s%02d", n, NIRKey(n))
		if back, err := ParseNIR(with); err != nil || back != n {
			t.Fatalf("%q with its key %q parses to %q, %v; want %q", n, with, back, err, n)
		}
		spaced := n[:1] + " " + n[1:3] + " " + n[3:5] + " " + n[5:7] + " " + n[7:10] + " " + n[10:] + " " + with[13:]
		if back, err := ParseNIR(strings.ToLower(spaced)); err != nil || back != n {
			t.Fatalf("%q parses to %q, %v; want %q", spaced, back, err, n)
		}
		if k := NIRKey(n); k < 1 || k > 97 {
			t.Fatalf("NIRKey(%q) = %d, not in 1..97", n, k)
		}
	})
}

// FuzzNormalizeEmail: NormalizeEmail never panics; an accepted address is
// at most 254 bytes, has one @ with a dotted domain, and is its own
// normal form; MaskEmail never panics on anything, and hides all but the
// first characters.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"valerie@yahoo.fr", "  Valerie.Dupont@Yahoo.FR ", "a@b.c", "@b.c", "a@", "a@b", "a@.b", "a@b.", "a@b..c",
		"a@@b.c", "a b@c.d", "\"a\"@b.c", "a<b>@c.d", "é@exemple.fr", "a@exemple.fr\n", strings.Repeat("a", 250) + "@b.fr",
		"a@b.c\xff", "\xff@b.c", "a@\u0130.fr", "a@K.fr", "ǅ@ǅ.ǅ", "", "@", "a@b.c@d.e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		masked := MaskEmail(s)
		if !strings.Contains(masked, "***") {
			t.Fatalf("MaskEmail(%q) = %q: nothing masked", s, masked)
		}
		e, err := NormalizeEmail(s)
		if err != nil {
			if e != "" {
				t.Fatalf("NormalizeEmail(%q) = %q with error %v", s, e, err)
			}
			return
		}
		at := strings.LastIndexByte(e, '@')
		if len(e) > 254 || at <= 0 || strings.Count(e, "@") != 1 || !strings.Contains(e[at:], ".") || strings.ContainsAny(e, " \t\r\n") {
			t.Fatalf("NormalizeEmail(%q) = %q: not an address", s, e)
		}
		again, err := NormalizeEmail(e)
		if err != nil || again != e {
			t.Fatalf("NormalizeEmail(%q) = %q, but NormalizeEmail(%q) = %q, %v: not idempotent", s, e, e, again, err)
		}
		m := MaskEmail(e)
		if want := firstRune(e[:at]) + "***@"; !strings.HasPrefix(m, want) {
			t.Fatalf("MaskEmail(%q) = %q: want it to begin with %q", e, m, want)
		}
	})
}
