package domain

import (
	"errors"
	"strconv"
	"strings"
)

// NIR errors, in French: they become the detail of an invalid_request.
var (
	ErrNIRLength = errors.New("doit contenir 13 caractères (ou 15 avec la clé)")
	ErrNIRChars  = errors.New("ne doit contenir que des chiffres (2A ou 2B pour la Corse)")
	ErrNIRSex    = errors.New("doit commencer par 1, 2, 3, 4, 7 ou 8")
	ErrNIRKey    = errors.New("a une clé de contrôle qui ne correspond pas")
)

// ParseNIR returns the canonical 13-character NIR (upper case, no spaces)
// of what a person typed: 13 characters, or 15 with the 2-digit key, which is
// then checked. Corsica's departments are written 2A and 2B.
func ParseNIR(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == '\u00a0' || r == '\t':
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		b.WriteRune(r)
	}
	n := b.String()
	if len(n) != 13 && len(n) != 15 {
		return "", ErrNIRLength
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= '0' && c <= '9' {
			continue
		}
		// Only the department's second character may be a letter: 2A, 2B.
		if i == 6 && (c == 'A' || c == 'B') && n[5] == '2' {
			continue
		}
		return "", ErrNIRChars
	}
	switch n[0] {
	case '1', '2', '3', '4', '7', '8':
	default:
		return "", ErrNIRSex
	}
	if len(n) == 15 {
		key, _ := strconv.Atoi(n[13:])
		if NIRKey(n[:13]) != key {
			return "", ErrNIRKey
		}
		n = n[:13]
	}
	return n, nil
}

// NIRKey is the 2-digit control key of a canonical 13-character NIR:
// 97 - (number mod 97), with 2A read as 19 and 2B as 18 (INSEE's rule).
func NIRKey(nir13 string) int {
	digits := nir13
	switch nir13[5:7] {
	case "2A":
		digits = nir13[:5] + "19" + nir13[7:]
	case "2B":
		digits = nir13[:5] + "18" + nir13[7:]
	}
	var mod uint64
	for i := 0; i < len(digits); i++ {
		mod = (mod*10 + uint64(digits[i]-'0')) % 97
	}
	return int(97 - mod)
}
