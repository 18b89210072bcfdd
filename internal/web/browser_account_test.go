package web_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// « Se souvenir de cet appareil »: a 6-month __Host- cookie; the next
// login on this browser skips the code (the password is still asked), a
// fresh browser context (another browser, a private window) does not.
func trustedDevice(t *testing.T, s *site) {
	nir, email := s.account(t, nil)
	p := s.person(t)
	p.login(nir, email, password, true)
	dc := p.cookies()["__Host-ameli-device"]
	if dc == nil || !dc.HTTPOnly || !dc.Secure || dc.SameSite != "Lax" || dc.Path != "/" {
		t.Fatalf("device cookie %+v", dc)
	}
	if left := time.Until(time.Unix(int64(dc.Expires), 0)) - s.dev.Clock.Offset(); left < 170*24*time.Hour || left > 190*24*time.Hour {
		t.Fatalf("device cookie lasts %s, want 6 months", left)
	}
	p.click("form[action='/deconnexion'] button")

	later := p.sameBrowser()
	later.open("/connexion")
	later.fill("#nir", nir)
	later.fill("#password", password)
	later.click("form[action='/connexion'] button")
	later.wantPage("/accueil", "Bienvenue sur votre compte ameli")

	// The password is still required on the trusted device.
	later.click("form[action='/deconnexion'] button")
	later.submitPassword(nir, "pas-le-bon-mot")
	if later.redBox() == "" || later.path() == "/accueil" {
		t.Fatal("a trusted device let a wrong password in")
	}

	elsewhere := s.person(t)
	elsewhere.submitPassword(nir, password)
	if !elsewhere.has("#send-code") {
		t.Fatalf("a fresh browser was not asked for a code (on %s)", elsewhere.path())
	}
}

// « Mes informations » -> « Paramètres de compte » -> « Mon mot de passe »:
// the 4-digit code by mail (a wrong one first), the new password (a weak
// one, a mismatch, then a good one), the confirmation, and the mail.
func passwordChange(t *testing.T, s *site) {
	p, nir, email := s.loggedIn(t)
	p.click("a[href='/mes-informations']")
	p.wantPage("/mes-informations", "MES INFORMATIONS")
	p.shot("20-mes-informations")
	p.click("form[action='/mes-informations/mot-de-passe/code'] button")
	p.wantPage("/mes-informations/mot-de-passe/code", "Modifier votre mot de passe")
	if !strings.Contains(p.text("main"), "Indiquez ci-dessous le code qui vous a été envoyé par mail à l'adresse suivante "+maskedOf(email)) ||
		!strings.Contains(p.text("main"), "Code à 4 chiffres (obligatoire)") || p.text("form.secondary-action button") != "Renvoyer le code par mail" {
		t.Fatalf("step 1:\n%s", p.text("main"))
	}
	p.shot("21-mot-de-passe-etape1-code")
	code := p.mail(email, "modifier le mot de passe").Code
	if len(code) != 4 {
		t.Fatalf("confirmation code %q", code)
	}
	p.fill("#code", wrong(code))
	p.click("form[action='/mes-informations/mot-de-passe/verification'] button")
	if !strings.HasPrefix(p.redBox(), "Le code de confirmation saisi est erroné.") {
		t.Fatalf("wrong code: %q", p.redBox())
	}
	p.fill("#code", code)
	p.click("form[action='/mes-informations/mot-de-passe/verification'] button")
	if !p.has("input#new_password[autocomplete='new-password']") || !strings.Contains(p.text("#password-advice"), "plusieurs mots sans rapport") {
		t.Fatalf("step 2:\n%s", p.text("main"))
	}
	p.shot("22-mot-de-passe-etape2-nouveau")

	p.fill("#new_password", "azerty123")
	p.fill("#confirm_password", "azerty123")
	p.click("form[action='/mes-informations/mot-de-passe'] button")
	if got := p.text("#new_password-error"); !strings.HasPrefix(got, "Le mot de passe choisi n'est pas assez sûr") {
		t.Fatalf("weak password: %q (red box %q)", got, p.redBox())
	}
	if !p.has("input#new_password[aria-invalid='true'][aria-describedby~='new_password-error']") {
		t.Fatal("the field's error is not linked to it (aria-describedby)")
	}
	p.shot("23-mot-de-passe-trop-faible")
	p.fill("#new_password", "lampe-orage-violon")
	p.fill("#confirm_password", "lampe-orage-violin")
	p.click("form[action='/mes-informations/mot-de-passe'] button")
	if got := p.text("#confirm_password-error"); got != "Les deux mots de passe saisis ne sont pas identiques." {
		t.Fatalf("mismatch: %q", got)
	}
	p.fill("#new_password", "lampe-orage-violon")
	p.fill("#confirm_password", "lampe-orage-violon")
	p.click("form[action='/mes-informations/mot-de-passe'] button")
	if !strings.HasPrefix(p.text(".alert-success"), "Le mot de passe de votre compte ameli a été modifié.") {
		t.Fatalf("done: %q %q", p.text("main"), p.redBox())
	}
	p.shot("24-mot-de-passe-modifie")
	if m := p.mail(email, "a été modifié"); !strings.Contains(m.Text, "(heure de Paris)") {
		t.Fatalf("password changed mail:\n%s", m.Text)
	}
	p.click("form[action='/deconnexion'] button")
	p.login(nir, email, "lampe-orage-violon", false)
}

// The seed's « Cas d'échecs » 1 and 2: the « Impossible de modifier… »
// page with « Retour ». (Cas 3 follows the email change.)
func passwordChangeFailures(t *testing.T, s *site) {
	p, _, _ := s.loggedIn(t)
	p.open("/mes-informations")
	p.click("form[action='/mes-informations/mot-de-passe/code'] button")
	for range 3 { // « Renvoyer le code par mail »: the 4th request in the hour is refused
		p.click("form.secondary-action button")
	}
	p.wantImpossible("Selon nos informations, vous avez déjà demandé 3 codes de confirmation et l'accès au service est bloqué jusqu'au ")
	p.shot("25-mot-de-passe-cas1-trop-de-codes")

	q, _, email := s.loggedIn(t)
	q.open("/mes-informations")
	q.click("form[action='/mes-informations/mot-de-passe/code'] button")
	code := q.mail(email, "modifier le mot de passe").Code
	for range 3 {
		q.fill("#code", wrong(code))
		q.click("form[action='/mes-informations/mot-de-passe/verification'] button")
	}
	q.wantImpossible("Suite à un trop grand nombre d'actions infructueuses, l'accès au service est bloqué jusqu'au ")
	q.shot("26-mot-de-passe-cas2-trop-d-erreurs")
	q.click("a.button")
	q.wantPage("/mes-informations", "MES INFORMATIONS")
}

// wantImpossible wants the seed's failure page: its title, the text in the
// red box (with a Paris time when it has one), and « Retour ».
func (p *person) wantImpossible(text string) {
	p.t.Helper()
	if h := p.text("h1"); h != "Impossible de modifier le mot de passe de votre compte ameli" {
		p.t.Fatalf("heading %q (red box %q)", h, p.redBox())
	}
	if box := p.redBox(); !strings.HasPrefix(box, text) && !strings.Contains(box, text) {
		p.t.Fatalf("red box %q, want %q", box, text)
	} else if strings.HasSuffix(text, "jusqu'au ") && !strings.HasSuffix(box, " - heure de Paris.") {
		p.t.Fatalf("red box %q without its Paris time", box)
	}
	if p.text("a.button") != "Retour" {
		p.t.Fatal("no « Retour »")
	}
}

// The email change from « Mes informations »: a code to the new address;
// then the password change is refused for 48 hours (« Cas d'échecs » 3).
func emailChange(t *testing.T, s *site) {
	p, _, email := s.loggedIn(t)
	p.open("/mes-informations")
	p.click("a[href='/mes-informations/mail']")
	p.wantPage("/mes-informations/mail", "Modifier votre adresse mail")
	p.fill("#new_email", "pas-une-adresse")
	p.click("form[action='/mes-informations/mail'] button")
	if p.text("#new_email-error") == "" {
		t.Fatalf("a malformed address is not told under its field (red box %q)", p.redBox())
	}
	newEmail := "nouvelle." + email
	p.fill("#new_email", newEmail)
	p.click("form[action='/mes-informations/mail'] button")
	p.shot("27-adresse-mail-code")
	p.fill("#code", p.mail(newEmail, "nouvelle adresse").Code)
	p.click("form[action='/mes-informations/mail/confirmation'] button")
	if !strings.HasPrefix(p.text(".alert-success"), "L'adresse mail de votre compte ameli a été modifiée") {
		t.Fatalf("email change: %q %q", p.text("main"), p.redBox())
	}
	p.open("/mes-informations")
	p.click("form[action='/mes-informations/mot-de-passe/code'] button")
	p.wantImpossible("Une nouvelle adresse mail a été enregistrée dans votre compte ameli depuis moins de 48 heures. Pour des raisons de sécurité, l'accès au changement de mot de passe de votre compte ameli est donc impossible pendant ce délai.")
	p.shot("28-mot-de-passe-cas3-adresse-recente")
}

// « Mot de passe oublié ? »: the same answer whatever the NIR, the mailed
// link opens the web front-end, a new password, and a login with it.
func forgottenPassword(t *testing.T, s *site) {
	nir, email := s.account(t, nil)
	p := s.person(t)
	p.open("/connexion")
	p.click("a[href='/mot-de-passe-oublie']")
	p.wantPage("/mot-de-passe-oublie", "Mot de passe oublié")
	p.shot("29-mot-de-passe-oublie")
	p.fill("#nir", "2 99 12 75 123 456") // no account
	p.click("form[action='/mot-de-passe-oublie'] button")
	unknown := p.text("main")
	p.open("/mot-de-passe-oublie")
	p.fill("#nir", nir)
	p.click("form[action='/mot-de-passe-oublie'] button")
	if known := p.text("main"); known != unknown {
		t.Fatalf("the answer tells whether the NIR has an account:\n%s\n---\n%s", known, unknown)
	}
	p.shot("30-mot-de-passe-oublie-envoye")

	link := p.mail(email, "Réinitialisation").Link
	u, err := url.Parse(link)
	if err != nil || !strings.HasPrefix(link, s.base+"/password/reset?token=") {
		t.Fatalf("the mailed link %q does not open the web front-end %s", link, s.base)
	}
	p.navigate("open the mailed link", chromedp.Navigate(link))
	p.wantPage("/password/reset", "Choisir un nouveau mot de passe")
	p.shot("31-nouveau-mot-de-passe")
	p.fill("#new_password", "nuage-brique-saumon")
	p.fill("#confirm_password", "nuage-brique-saumon")
	p.click("form[action='/password/reset'] button")
	if !strings.HasPrefix(p.text(".alert-success"), "Votre nouveau mot de passe est enregistré.") {
		t.Fatalf("reset: %q %q", p.text("main"), p.redBox())
	}
	// The link serves once.
	p.navigate("open the link again", chromedp.Navigate(u.String()))
	p.fill("#new_password", "autre-phrase-secrete")
	p.fill("#confirm_password", "autre-phrase-secrete")
	p.click("form[action='/password/reset'] button")
	if !strings.HasPrefix(p.redBox(), "Ce lien de réinitialisation du mot de passe n'est plus valable.") {
		t.Fatalf("a spent link: %q", p.redBox())
	}
	p.login(nir, email, "nuage-brique-saumon", false)
}

func maskedOf(email string) string {
	local, domain, _ := strings.Cut(email, "@")
	host, tld, _ := strings.Cut(domain, ".")
	return local[:1] + "***@" + host[:1] + "***." + tld
}
