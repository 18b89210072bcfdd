package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp/kb"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// One stack and one browser for every page; each row a fresh browser
// context (a new profile), each with its own account.
func TestBrowser(t *testing.T) {
	s := newSite(t)
	t.Run("login_with_the_mailed_code_keyboard_only_then_home_and_logout", func(t *testing.T) { loginKeyboardOnly(t, s) })
	for _, c := range seedErrorCases() {
		t.Run(c.name, func(t *testing.T) { c.run(t, s) })
	}
	t.Run("trusted_device_skips_the_code_on_that_browser_only", func(t *testing.T) { trustedDevice(t, s) })
	t.Run("password_change_with_the_mailed_confirmation_code", func(t *testing.T) { passwordChange(t, s) })
	t.Run("password_change_failure_cases", func(t *testing.T) { passwordChangeFailures(t, s) })
	t.Run("email_change_then_password_change_refused_for_48_hours", func(t *testing.T) { emailChange(t, s) })
	t.Run("forgotten_password_through_the_mailed_link", func(t *testing.T) { forgottenPassword(t, s) })
}

// Étapes 0 to 3 with the keyboard alone, « Dernière connexion » on the
// second login, and « Se déconnecter ».
func loginKeyboardOnly(t *testing.T, s *site) {
	nir, email := s.account(t, nil)
	p := s.person(t)
	p.open("/connexion")
	p.wantPage("/connexion", "J'accède à mon compte ameli")
	p.shot("01-connexion")
	p.tabTo("nir")
	p.press(nir)
	p.tabTo("password") // past « Où trouver mon numéro de sécurité sociale ? »
	p.press(password)
	p.navigate("submit with Enter", chromedpKey(kb.Enter))

	// Étape 1: the masked address and the button that sends the code.
	p.wantPage("/connexion", "J'accède à mon compte ameli")
	if got := p.text(".masked"); got != domain.MaskEmail(email) {
		t.Fatalf("masked address %q, want %q", got, domain.MaskEmail(email))
	}
	for _, want := range []string{"CLIQUEZ POUR RECEVOIR UN CODE DE SÉCURITÉ", "Ce code sera envoyé à l'adresse mail associée à votre compte",
		"Pour accéder à votre compte ameli, la saisie d'un code de sécurité est nécessaire."} {
		if !strings.Contains(p.text("main"), want) {
			t.Fatalf("step 1 lacks %q:\n%s", want, p.text("main"))
		}
	}
	p.shot("02-connexion-etape1-envoi-du-code")
	p.tabTo("send-code")
	p.navigate("send the code with Enter", chromedpKey(kb.Enter))

	// Étape 3: the code field, « Se souvenir de cet appareil », the list.
	for _, want := range []string{"Saisissez le code de sécurité reçu par mail :", "Se souvenir de cet appareil",
		"Cochez cette case pour ne plus saisir de code de sécurité pendant 6 mois.", "Vous n'avez pas reçu ce code, vérifiez :",
		"RECEVOIR UN NOUVEAU CODE DE SÉCURITÉ", "ME CONNECTER"} {
		if !strings.Contains(p.text("main"), want) {
			t.Fatalf("step 3 lacks %q:\n%s", want, p.text("main"))
		}
	}
	p.shot("03-connexion-etape3-code")
	code := p.mail(email, "code de sécurité").Code
	p.tabTo("code")
	p.press(code)
	p.navigate("log in with Enter", chromedpKey(kb.Enter))
	p.wantPage("/accueil", "Bienvenue sur votre compte ameli")
	if got := p.text(".last-login"); got != "Première connexion à votre compte ameli." {
		t.Fatalf("first login: %q", got)
	}
	cookies := p.cookies()
	sc := cookies["__Host-ameli-session"]
	if sc == nil || !sc.HTTPOnly || !sc.Secure || sc.SameSite != network.CookieSameSiteLax || sc.Path != "/" {
		t.Fatalf("session cookie %+v (all: %v)", sc, cookies)
	}
	if left := time.Until(time.Unix(int64(sc.Expires), 0)) - s.dev.Clock.Offset(); left > 31*time.Minute || left < 25*time.Minute {
		t.Fatalf("session cookie ends in %s, want the session's 30 minutes", left)
	}
	if _, kept := cookies["__Host-ameli-device"]; kept {
		t.Fatal("a device cookie without « Se souvenir de cet appareil »")
	}
	firstLogin := s.dev.Clock.Now()

	p.click("form[action='/deconnexion'] button")
	p.wantPage("/connexion", "J'accède à mon compte ameli")
	if got := p.text(".alert-info"); got != "Vous êtes déconnecté de votre compte ameli." {
		t.Fatalf("after logout: %q", got)
	}
	if _, kept := p.cookies()["__Host-ameli-session"]; kept {
		t.Fatal("the session cookie outlived the logout")
	}
	p.open("/accueil")
	p.wantPage("/connexion", "J'accède à mon compte ameli")

	// The second login shows the first one as « Dernière connexion ».
	p.login(nir, email, password, false)
	last := p.text(".last-login")
	if !strings.HasPrefix(last, "Dernière connexion : ") || !matchesMinute(strings.TrimPrefix(last, "Dernière connexion : "), firstLogin, "02/01/2006 - 15:04") {
		t.Fatalf("%q, want the first login at %s (Paris)", last, firstLogin.In(domain.Paris).Format("02/01/2006 - 15:04"))
	}
	p.shot("04-accueil")
}

// matchesMinute: got is t (or the minute before, the clock having moved
// on) in Paris time, in layout.
func matchesMinute(got string, t time.Time, layout string) bool {
	return got == t.In(domain.Paris).Format(layout) || got == t.Add(-time.Minute).In(domain.Paris).Format(layout)
}
