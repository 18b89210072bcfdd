// Package passwordrule is the quality rule for new passwords: a length
// within the policy's bounds, and not guessable: zxcvbn (a maintained port
// of Dropbox's estimator, with its lists of common passwords, names and
// words, and keyboard patterns) must score it at least the policy's minimum,
// counting the holder's own data (NIR, email) and the service's words as
// known to an attacker. No composition rules (NIST SP 800-63B-4 §3.1.1.2).
package passwordrule

import (
	"strings"

	"github.com/trustelem/zxcvbn"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// maxScored bounds the work of the estimator: its cost grows with length,
// and a longer password is not made weaker by what follows.
const maxScored = 64

// serviceWords are what any attacker would try first on this service.
var serviceWords = []string{"ameli", "assurance", "maladie", "securite", "sociale", "cpam", "caisse", "carte", "vitale", "motdepasse", "mot de passe"}

// Check returns nil when the password may be used, else a weak_password
// refusal that says what to do. userInputs are the holder's own data.
func Check(p domain.Policy, password string, userInputs ...string) *domain.Error {
	if err := domain.CheckPassword(p, password); err != nil {
		return err
	}
	scored := password
	if r := []rune(scored); len(r) > maxScored {
		scored = string(r[:maxScored])
	}
	inputs := append([]string{}, serviceWords...)
	for _, in := range userInputs {
		if in = strings.TrimSpace(in); in != "" {
			inputs = append(inputs, strings.ToLower(in))
			if at := strings.IndexByte(in, '@'); at > 0 {
				inputs = append(inputs, strings.ToLower(in[:at]))
			}
		}
	}
	if zxcvbn.PasswordStrength(scored, inputs).Score < p.PasswordMinScore {
		return &domain.Error{Code: domain.CodeWeakPassword,
			Detail: "il est trop facile à deviner (mot de passe courant, suite de caractères, mot du dictionnaire ou information personnelle). Choisissez plutôt plusieurs mots sans rapport entre eux, par exemple une courte phrase"}
	}
	return nil
}
