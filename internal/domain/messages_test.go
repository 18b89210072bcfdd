package domain

import (
	"testing"
	"time"
)

// Every message of the seed, on every channel, word for word. The seed
// shows two front-ends: the web account (COMPTE AMELI WEB) and the app
// (APPLI COMPTE AMELI). Where the app's screen shows its own words (Cas 4
// and 5), the app and the BMS kiosks, which run the app's screens, say
// them; the back-office says what the web says. Where the seed shows only
// the web's screen (Cas 1, 1 bis, 3, 6, 7, 8, 9, the password change's
// failures) or the same words on both (Cas 2), every channel gets them.
// The dates are the seed's own, rebuilt from UTC instants.
func TestEveryChannelShowsTheSeedsWords(t *testing.T) {
	const (
		webWrongPassword = "Le mot de passe saisi est incorrect. Merci de le vérifier. Attention: votre compte sera bloqué après 3 tentatives infructueuses."
		webWrongCode     = "Le code de sécurité saisi est erroné. Merci de le vérifier. Attention: votre compte sera bloqué après 3 tentatives infructueuses."
		appWrongEntry    = "Les informations saisies sont erronées. Merci de vérifier votre saisie. Attention : 3 essais infructueux bloquent l'accès au service."
	)
	same := func(text string) map[string]string {
		return map[string]string{"web": text, "app": text, "kiosk": text, "backoffice": text}
	}
	for _, c := range []struct {
		seed string // where the seed shows it
		err  *Error
		want map[string]string // channel -> message
	}{
		{"web_cas_4_and_app_cas_4_wrong_password", &Error{Code: CodeInvalidCredentials},
			map[string]string{"web": webWrongPassword, "app": appWrongEntry, "kiosk": appWrongEntry, "backoffice": webWrongPassword}},
		{"web_cas_5_and_app_cas_5_wrong_security_code", &Error{Code: CodeOTPInvalid, AttemptsLeft: 2},
			map[string]string{"web": webWrongCode, "app": appWrongEntry, "kiosk": appWrongEntry, "backoffice": webWrongCode}},
		{"web_cas_1_no_validated_email", &Error{Code: CodeNoValidatedEmail},
			same("Un code de sécurité envoyé par mail est nécessaire pour vous connecter. Or, vous n'avez pas d'adresse mail renseignée dans votre compte. Merci de contacter votre caisse d'assurance maladie.")},
		{"web_cas_1_bis_deactivated_account", &Error{Code: CodeAccountDeactivated, DeactivatedAt: time.Date(2024, 4, 12, 8, 0, 0, 0, time.UTC)},
			same("Votre compte a été désactivé le 12/04/2024. Si vous souhaitez le réactiver, cliquez sur le lien \"Créer un compte\" situé en bas de cet écran. Munissez-vous de votre carte vitale et de votre RIB.")},
		{"web_cas_2_and_app_cas_2_expired_security_code", &Error{Code: CodeOTPExpired, Minutes: 15},
			same("Le code de sécurité n'a pas été saisi dans les 15 minutes. Merci d'en demander un nouveau.")},
		{"web_cas_3_code_quota_reached", &Error{Code: CodeOTPQuotaExceeded, Reason: ReasonOTPQuota, BlockedUntil: time.Date(2023, 1, 5, 14, 5, 0, 0, time.UTC)},
			same("Le nombre maximum de demandes de code a été atteint. L'accès au service est bloqué jusqu'au 05/01/2023 - 15h05 (heure de Paris). À la fin du blocage, pensez à vérifier le dossier Spam ou Indésirable de votre boîte mail.")},
		{"web_cas_6_three_wrong_security_codes", &Error{Code: CodeAccountLocked, Reason: ReasonOTPFailures, BlockedUntil: time.Date(2023, 1, 5, 13, 45, 0, 0, time.UTC)},
			same("Les informations saisies sont erronées. L'accès au service est bloqué jusqu'au 05/01/2023 - 14h45 (heure de Paris).")},
		{"web_cas_7_three_wrong_passwords", &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: time.Date(2023, 1, 4, 14, 47, 0, 0, time.UTC)},
			same("Pour des raisons de sécurité, l'accès à votre compte ameli est bloqué jusqu'au mercredi 4 janvier 2023 15:47 (heure de Paris). Si vous n'êtes pas sûr de votre mot de passe, cliquez sur le lien « Mot de passe oublié ? » ci-dessous.")},
		{"web_cas_8_no_affiliation", &Error{Code: CodeAffiliationMissing},
			same("Une mise à jour de votre dossier est nécessaire pour accéder à votre compte. Merci de prendre contact avec votre caisse.")},
		{"web_cas_9_affiliation_pending", &Error{Code: CodeAffiliationPending},
			same("Votre rattachement à votre caisse d'assurance maladie est en cours, vous pourrez bientôt bénéficier de votre compte ameli.")},
		{"password_change_cas_1_three_code_requests", &Error{Code: CodeCodeRequestsExceeded, Reason: "password_change", BlockedUntil: time.Date(2023, 9, 16, 12, 32, 0, 0, time.UTC)},
			same("Impossible de modifier le mot de passe de votre compte ameli. La saisie d'un code de confirmation est nécessaire pour sécuriser le changement de mot de passe de votre compte ameli. Selon nos informations, vous avez déjà demandé 3 codes de confirmation et l'accès au service est bloqué jusqu'au 16/09/2023, 14h32 - heure de Paris.")},
		{"password_change_cas_2_three_wrong_codes", &Error{Code: CodeCodeAttemptsExceeded, Reason: "password_change", BlockedUntil: time.Date(2025, 8, 2, 11, 37, 0, 0, time.UTC)},
			same("Impossible de modifier le mot de passe de votre compte ameli. Suite à un trop grand nombre d'actions infructueuses, l'accès au service est bloqué jusqu'au 02/08/2025, 13h37 - heure de Paris.")},
		{"password_change_cas_3_email_changed_within_48_hours", &Error{Code: CodeEmailRecentlyChanged},
			same("Impossible de modifier le mot de passe de votre compte ameli. Une nouvelle adresse mail a été enregistrée dans votre compte ameli depuis moins de 48 heures. Pour des raisons de sécurité, l'accès au changement de mot de passe de votre compte ameli est donc impossible pendant ce délai.")},
	} {
		for _, channel := range []string{"web", "app", "kiosk", "backoffice"} {
			t.Run(c.seed+"/"+channel, func(t *testing.T) {
				if got := c.err.MessageFor(channel); got != c.want[channel] {
					t.Errorf("MessageFor(%q):\n got  %q\n want %q", channel, got, c.want[channel])
				}
			})
		}
		t.Run(c.seed+"/no_channel_is_the_web", func(t *testing.T) {
			if got := c.err.MessageFor(""); got != c.want["web"] || c.err.Message() != c.want["web"] {
				t.Errorf("MessageFor(\"\") = %q, Message() = %q; want the web's %q", got, c.err.Message(), c.want["web"])
			}
		})
	}
}
