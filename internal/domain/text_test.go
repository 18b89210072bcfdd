package domain

import (
	"strings"
	"testing"
	"time"
)

func TestParseNIR(t *testing.T) {
	for _, c := range []struct {
		in, want string
		err      error
	}{
		{in: "2690549588157", want: "2690549588157"},
		{in: "2 69 05 49 588 157", want: "2690549588157"},
		{in: "2 69 05 49 588 157 80", want: "2690549588157"}, // 15 characters, key checked
		{in: "269054958815781", err: ErrNIRKey},
		{in: "1 93 33 04 075 242 14", want: "1933304075242"},
		{in: "269052a588157", want: "269052A588157"},   // Corsica, lower case typed
		{in: "269052A58815717", want: "269052A588157"}, // 2A counts as 19 in the key
		{in: "269052B588157", want: "269052B588157"},   // 2B
		{in: "26905A9588157", err: ErrNIRChars},        // a letter elsewhere
		{in: "269053A588157", err: ErrNIRChars},        // 3A is no department
		{in: "569054958815", err: ErrNIRLength},        // 12
		{in: "26905495881577", err: ErrNIRLength},      // 14
		{in: "5690549588157", err: ErrNIRSex},          // first digit
		{in: "", err: ErrNIRLength},
	} {
		got, err := ParseNIR(c.in)
		if err != c.err || got != c.want {
			t.Errorf("ParseNIR(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestEmails(t *testing.T) {
	for in, want := range map[string]string{
		"valerie@yahoo.fr":      "v***@y***.fr",
		"a.b@gmail.com":         "a***@g***.com",
		"élodie@orange.fr":      "é***@o***.fr",
		"jo@mail.example.co.uk": "j***@m***.uk",
	} {
		if got := MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
	if got, err := NormalizeEmail("  Jean.Dupont@Exemple.FR "); err != nil || got != "Jean.Dupont@exemple.fr" {
		t.Errorf("NormalizeEmail = %q, %v", got, err)
	}
	for _, bad := range []string{"", "nobody", "a@b", "@x.fr", "a@.fr", "a b@x.fr", "a@x..fr", "a@x.fr.", strings.Repeat("a", 250) + "@x.fr"} {
		if _, err := NormalizeEmail(bad); err == nil {
			t.Errorf("NormalizeEmail(%q) accepted", bad)
		}
	}
}

// The seed's own examples, rebuilt from UTC instants: the dates in messages
// are Paris time, winter (UTC+1) and summer (UTC+2).
func TestMessagesShowParisTime(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{&Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: time.Date(2023, 1, 4, 14, 47, 0, 0, time.UTC)},
			"l'accès à votre compte ameli est bloqué jusqu'au mercredi 4 janvier 2023 15:47 (heure de Paris). Si vous n'êtes pas sûr de votre mot de passe, cliquez sur le lien « Mot de passe oublié ? » ci-dessous."},
		{&Error{Code: CodeAccountLocked, Reason: ReasonOTPFailures, BlockedUntil: time.Date(2023, 1, 5, 13, 45, 0, 0, time.UTC)},
			"Les informations saisies sont erronées. L'accès au service est bloqué jusqu'au 05/01/2023 - 14h45 (heure de Paris)."},
		{&Error{Code: CodeOTPQuotaExceeded, BlockedUntil: time.Date(2023, 1, 5, 14, 5, 0, 0, time.UTC)},
			"Le nombre maximum de demandes de code a été atteint. L'accès au service est bloqué jusqu'au 05/01/2023 - 15h05 (heure de Paris). À la fin du blocage, pensez à vérifier le dossier Spam ou Indésirable de votre boîte mail."},
		{&Error{Code: CodeAccountLocked, Reason: ReasonOTPQuota, BlockedUntil: time.Date(2023, 1, 5, 14, 5, 0, 0, time.UTC)},
			"bloqué jusqu'au 05/01/2023 - 15h05 (heure de Paris)"},
		{&Error{Code: CodeCodeRequestsExceeded, BlockedUntil: time.Date(2023, 9, 16, 12, 32, 0, 0, time.UTC)},
			"vous avez déjà demandé 3 codes de confirmation et l'accès au service est bloqué jusqu'au 16/09/2023, 14h32 - heure de Paris."},
		{&Error{Code: CodeCodeAttemptsExceeded, BlockedUntil: time.Date(2025, 8, 2, 11, 37, 0, 0, time.UTC)},
			"Suite à un trop grand nombre d'actions infructueuses, l'accès au service est bloqué jusqu'au 02/08/2025, 13h37 - heure de Paris."},
		{&Error{Code: CodeAccountDeactivated, DeactivatedAt: time.Date(2024, 4, 11, 22, 30, 0, 0, time.UTC)},
			"Votre compte a été désactivé le 12/04/2024."}, // 00:30 in Paris is already the 12th
		{&Error{Code: CodeOTPExpired, Minutes: 15}, "Le code de sécurité n'a pas été saisi dans les 15 minutes. Merci d'en demander un nouveau."},
		{&Error{Code: CodeInvalidCredentials}, "Le mot de passe saisi est incorrect. Merci de le vérifier. Attention: votre compte sera bloqué après 3 tentatives infructueuses."},
		{&Error{Code: CodeInvalidRequest, Field: "nir", Detail: ErrNIRLength.Error()}, "le champ « nir » doit contenir 13 caractères"},
	} {
		if got := c.err.Message(); !strings.Contains(got, c.want) {
			t.Errorf("%s message:\n got  %q\n want it to contain %q", c.err.Code, got, c.want)
		}
	}
	if got := FormatMail(time.Date(2025, 6, 6, 12, 27, 0, 0, time.UTC)); got != "vendredi 06 juin 2025 à 14:27" {
		t.Errorf("FormatMail = %q", got)
	}
}
