package domain

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrEmail is the detail of an invalid_request for a malformed address.
var ErrEmail = errors.New("doit être une adresse mail valide (nom@domaine.fr)")

// NormalizeEmail trims an address and checks its shape: one @, a local part,
// a domain with a dot, no spaces, at most 254 bytes. Delivery is the real test.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if len(s) > 254 || !utf8.ValidString(s) || at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n<>,;\"") {
		return "", ErrEmail
	}
	// Lower case may lengthen the domain (U+023A is 2 bytes, its lower
	// case 3): the bound is checked again on the result.
	local, domain := s[:at], strings.ToLower(s[at+1:])
	if len(local)+1+len(domain) > 254 || strings.Contains(local, "@") || !strings.Contains(domain, ".") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", ErrEmail
	}
	return local + "@" + domain, nil
}

// MaskEmail shows an address as the seed does: "v***@y***.fr", the first
// character of the local part and of the domain, and the top-level domain.
func MaskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return "***"
	}
	local, domain := email[:at], email[at+1:]
	tld := ""
	if dot := strings.LastIndexByte(domain, '.'); dot >= 0 {
		tld = domain[dot:]
	}
	return firstRune(local) + "***@" + firstRune(domain) + "***" + tld
}

func firstRune(s string) string {
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

// CheckPassword applies the password rule to a new password: its length in
// characters within the policy's bounds. The clear password never leaves
// the caller; only the verdict does.
func CheckPassword(p Policy, password string) *Error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < p.PasswordMinLength:
		return &Error{Code: CodeWeakPassword, Detail: fmt.Sprintf("il doit contenir au moins %d caractères", p.PasswordMinLength)}
	case n > p.PasswordMaxLength:
		return &Error{Code: CodeWeakPassword, Detail: fmt.Sprintf("il doit contenir au plus %d caractères", p.PasswordMaxLength)}
	}
	return nil
}
