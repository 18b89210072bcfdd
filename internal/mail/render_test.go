package mail

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The seed's "password changed" mail: Friday 6 June 2025, 14:27 in Paris
// (summer time, UTC+2).
var seedChangedAt = time.Date(2025, 6, 6, 12, 27, 0, 0, time.UTC)

func render(t *testing.T, kind Kind, data any) (string, string, string) {
	t.Helper()
	s, txt, html, err := Render(kind, data)
	if err != nil {
		t.Fatalf("render %s: %v", kind, err)
	}
	if testing.Verbose() {
		t.Logf("%s\nSubject: %s\n%s", kind, s, txt)
	}
	return s, txt, html
}

func contains(t *testing.T, part, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s part lacks %q:\n%s", part, w, got)
		}
	}
}

func TestLoginCodeMailIsTheSeedsEtape2Mail(t *testing.T) {
	subject, txt, html := render(t, KindLoginCode, LoginCode{Code: "123456", Lifetime: 15 * time.Minute})
	if subject != "Votre code de sécurité pour vous connecter à votre compte ameli" {
		t.Errorf("subject %q", subject)
	}
	seed := []string{
		"Bonjour,",
		"Nous vous adressons votre code de sécurité pour vous connecter à votre compte ameli :",
		"valable seulement 15 minutes. Au-delà de ce délai, vous devrez demander un nouveau code.",
		"Ce code est strictement personnel et ne doit jamais être communiqué.",
		"Nous ne demandons jamais de code par téléphone.",
		"Si vous n'êtes pas à l'origine de cette demande, contactez votre caisse d'assurance maladie qui vous donnera les consignes à suivre. Sachez néanmoins que votre compte ameli reste sécurisé.",
		"Ce message est généré par un automate. Ne pas utiliser la fonctionnalité « répondre à ».",
		"Merci de votre confiance.",
		"Votre caisse d'assurance maladie",
		"Téléchargez gratuitement l'appli ameli depuis l'App Store ou Google Play",
	}
	contains(t, "text", txt, append(seed, "\n    123456\n")...)
	contains(t, "html", html, seed[0], "Nous ne demandons jamais de code par téléphone.", "<strong>15 minutes</strong>",
		"font-size:34px", ">123456</span>", `lang="fr"`, "Votre caisse d'assurance maladie")
}

func TestStrictLifetimeIsTenMinutes(t *testing.T) {
	_, txt, _ := render(t, KindLoginCode, LoginCode{Code: "654321", Lifetime: 10 * time.Minute})
	contains(t, "text", txt, "valable seulement 10 minutes")
}

func TestPasswordChangedMailHasTheRealParisTime(t *testing.T) {
	subject, txt, html := render(t, KindPasswordChanged, PasswordChanged{At: seedChangedAt})
	want := "Le mot de passe de votre compte ameli a été modifié le vendredi 06 juin 2025 à 14:27 (heure de Paris)."
	contains(t, "text", txt, want,
		"Si vous n'êtes pas à l'origine de cette modification, veuillez en informer rapidement votre Caisse d'Assurance Maladie.",
		"Attention, cet email est généré par un automate.")
	contains(t, "html", html, "<strong>vendredi 06 juin 2025 à 14:27</strong> (heure de Paris)")
	if subject != "Le mot de passe de votre compte ameli a été modifié" {
		t.Errorf("subject %q", subject)
	}
	// Winter time: UTC+1.
	_, txt, _ = render(t, KindPasswordChanged, PasswordChanged{At: time.Date(2023, 1, 5, 13, 5, 0, 0, time.UTC)})
	contains(t, "text", txt, "le jeudi 05 janvier 2023 à 14:05 (heure de Paris)")
}

func TestPasswordChangeCodeMail(t *testing.T) {
	subject, txt, html := render(t, KindPasswordChangeCode, PasswordChangeCode{Code: "4821", Lifetime: 15 * time.Minute})
	contains(t, "subject", subject, "code de confirmation", "mot de passe")
	contains(t, "text", txt, "\n    4821\n", "valable seulement 15 minutes", "« Renvoyer le code par mail »",
		"ne doit jamais être communiqué", "Nous ne demandons jamais de code par téléphone.", "généré par un automate")
	contains(t, "html", html, ">4821</span>")
}

func TestPasswordResetMailCarriesTheLink(t *testing.T) {
	link := "https://ameli.example/password/reset?token=abc_DEF-123"
	subject, txt, html := render(t, KindPasswordReset, PasswordReset{Link: link, Lifetime: time.Hour})
	contains(t, "subject", subject, "Réinitialisation du mot de passe")
	contains(t, "text", txt, "\n"+link+"\n", "valable seulement 1 heure", "une seule fois", "« Mot de passe oublié ? »")
	contains(t, "html", html, `href="`+link+`"`, "<strong>1 heure</strong>")
}

func TestEmailChangeCodeMail(t *testing.T) {
	_, txt, html := render(t, KindEmailChangeCode, EmailChangeCode{Code: "908172", Lifetime: 15 * time.Minute})
	contains(t, "text", txt, "\n    908172\n", "enregistrer cette adresse mail", "valable seulement 15 minutes")
	contains(t, "html", html, ">908172</span>")
}

func TestEmailChangedMailToTheOldAddress(t *testing.T) {
	_, txt, _ := render(t, KindEmailChanged, EmailChanged{At: seedChangedAt, NewMaskedEmail: "v***@y***.fr"})
	contains(t, "text", txt, "modifiée le vendredi 06 juin 2025 à 14:27 (heure de Paris)", "v***@y***.fr")
}

func TestLockoutNoticeSaysUntilWhenInParisTime(t *testing.T) {
	until := time.Date(2023, 1, 4, 14, 47, 0, 0, time.UTC) // 15:47 in Paris
	_, txt, html := render(t, KindLockout, Lockout{Reason: ReasonPasswordFailures, Failures: 3, BlockedUntil: until})
	contains(t, "text", txt, "suite à 3 saisies erronées de votre mot de passe", "bloqué jusqu'au mercredi 4 janvier 2023 15:47 (heure de Paris)")
	contains(t, "html", html, "<strong>mercredi 4 janvier 2023 15:47</strong>")

	until = time.Date(2023, 1, 5, 13, 45, 0, 0, time.UTC)
	_, txt, _ = render(t, KindLockout, Lockout{Reason: ReasonOTPFailures, Failures: 3, BlockedUntil: until})
	contains(t, "text", txt, "saisies erronées du code de sécurité", "bloqué jusqu'au 05/01/2023 - 14h45 (heure de Paris)")

	until = time.Date(2023, 1, 5, 14, 5, 0, 0, time.UTC)
	_, txt, _ = render(t, KindLockout, Lockout{Reason: ReasonOTPQuota, BlockedUntil: until})
	contains(t, "text", txt, "Le nombre maximum de demandes de code de sécurité a été atteint", "05/01/2023 - 15h05 (heure de Paris)",
		"pensez à vérifier le dossier Spam ou Indésirable")
}

func TestNewTrustedDeviceNoticeEscapesTheUserAgent(t *testing.T) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	ua := `Mozilla/5.0 <script>alert("x")</script>`
	_, txt, html := render(t, KindNewTrustedDevice, NewTrustedDevice{At: at, TrustedUntil: at.AddDate(0, 6, 0), Channel: "web", Device: ua})
	contains(t, "text", txt, "Le jeudi 05 janvier 2023 à 14:30 (heure de Paris)", "« Se souvenir de cet appareil »", "jusqu'au 05/07/2023",
		"Appareil : "+ua)
	if strings.Contains(html, "<script>") {
		t.Error("the user agent reached the HTML part unescaped")
	}
	contains(t, "html", html, "&lt;script&gt;")
}

func TestRenderRefusesDataThatDoesNotFit(t *testing.T) {
	for name, tc := range map[string]struct {
		kind Kind
		data any
	}{
		"wrong type":     {KindLoginCode, PasswordChanged{At: seedChangedAt}},
		"pointer":        {KindLoginCode, &LoginCode{Code: "123456", Lifetime: time.Minute}},
		"no code":        {KindLoginCode, LoginCode{Lifetime: time.Minute}},
		"letters":        {KindPasswordChangeCode, PasswordChangeCode{Code: "12a4", Lifetime: time.Minute}},
		"no lifetime":    {KindEmailChangeCode, EmailChangeCode{Code: "1234"}},
		"no date":        {KindPasswordChanged, PasswordChanged{}},
		"relative link":  {KindPasswordReset, PasswordReset{Link: "/reset?token=x", Lifetime: time.Hour}},
		"unknown reason": {KindLockout, Lockout{Reason: "bored", BlockedUntil: seedChangedAt}},
	} {
		if _, _, _, err := Render(tc.kind, tc.data); !errors.Is(err, ErrData) {
			t.Errorf("%s: want ErrData, got %v", name, err)
		}
	}
	if _, _, _, err := Render("nope", nil); err == nil {
		t.Error("an unknown kind rendered")
	}
}

func TestEveryKindRendersBothParts(t *testing.T) {
	at := seedChangedAt
	samples := map[Kind]any{
		KindLoginCode:          LoginCode{Code: "123456", Lifetime: 15 * time.Minute},
		KindPasswordChangeCode: PasswordChangeCode{Code: "1234", Lifetime: 15 * time.Minute},
		KindPasswordChanged:    PasswordChanged{At: at},
		KindPasswordReset:      PasswordReset{Link: "https://x.example/r?token=t", Lifetime: time.Hour},
		KindEmailChangeCode:    EmailChangeCode{Code: "123456", Lifetime: 15 * time.Minute},
		KindEmailChanged:       EmailChanged{At: at, NewMaskedEmail: "a***@b***.fr"},
		KindLockout:            Lockout{Reason: ReasonOTPQuota, BlockedUntil: at},
		KindNewTrustedDevice:   NewTrustedDevice{At: at, TrustedUntil: at.AddDate(0, 6, 0)},
	}
	for _, k := range Kinds() {
		d, ok := samples[k]
		if !ok {
			t.Errorf("no sample for %s", k)
			continue
		}
		s, txt, html := render(t, k, d)
		if s == "" || strings.Contains(s, "\n") {
			t.Errorf("%s: bad subject %q", k, s)
		}
		if !strings.HasPrefix(txt, "MON COMPTE AMELI\n\nBonjour,\n\n") || strings.Contains(txt, "\n\n\n") {
			t.Errorf("%s: text layout:\n%s", k, txt)
		}
		if !strings.Contains(html, "</html>") || !strings.Contains(html, "MON COMPTE AMELI") {
			t.Errorf("%s: html layout", k)
		}
	}
}

func TestFrenchDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1 minute", 10 * time.Minute: "10 minutes", time.Hour: "1 heure",
		2 * time.Hour: "2 heures", 90 * time.Minute: "1 heure 30 minutes", 48 * time.Hour: "48 heures",
	} {
		if got := FrenchDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
