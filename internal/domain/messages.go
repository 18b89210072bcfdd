package domain

import (
	"fmt"
	"time"
	_ "time/tzdata" // Paris time must work on machines without zone files
)

// Paris is the time zone every date shown to people is written in.
var Paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("load time zone %s: %v", name, err))
	}
	return loc
}

var (
	frWeekdays = [...]string{"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"}
	frMonths   = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
)

// FormatLong: "mercredi 4 janvier 2023 15:47" (seed, Cas 7).
func FormatLong(t time.Time) string {
	p := t.In(Paris)
	return fmt.Sprintf("%s %d %s %d %02d:%02d", frWeekdays[p.Weekday()], p.Day(), frMonths[p.Month()-1], p.Year(), p.Hour(), p.Minute())
}

// FormatMail: "vendredi 06 juin 2025 à 14:27" (seed, the "password changed" mail).
func FormatMail(t time.Time) string {
	p := t.In(Paris)
	return fmt.Sprintf("%s %02d %s %d à %02d:%02d", frWeekdays[p.Weekday()], p.Day(), frMonths[p.Month()-1], p.Year(), p.Hour(), p.Minute())
}

// FormatDash: "05/01/2023 - 14h45" (seed, Cas 3 and 6).
func FormatDash(t time.Time) string {
	p := t.In(Paris)
	return fmt.Sprintf("%02d/%02d/%d - %02dh%02d", p.Day(), p.Month(), p.Year(), p.Hour(), p.Minute())
}

// FormatComma: "16/09/2023, 14h32" (seed, password change failures).
func FormatComma(t time.Time) string {
	p := t.In(Paris)
	return fmt.Sprintf("%02d/%02d/%d, %02dh%02d", p.Day(), p.Month(), p.Year(), p.Hour(), p.Minute())
}

// FormatDate: "12/04/2024" (seed, Cas 1 bis).
func FormatDate(t time.Time) string {
	p := t.In(Paris)
	return fmt.Sprintf("%02d/%02d/%d", p.Day(), p.Month(), p.Year())
}

// Fixed texts, word for word from the seed.
const (
	// The web account's wrong password (seed, COMPTE AMELI WEB, Cas 4).
	msgInvalidCredentials = "Le mot de passe saisi est incorrect. Merci de le vérifier. Attention: votre compte sera bloqué après 3 tentatives infructueuses."
	// The web account's wrong security code (seed, COMPTE AMELI WEB, Cas 5).
	msgOTPInvalid = "Le code de sécurité saisi est erroné. Merci de le vérifier. Attention: votre compte sera bloqué après 3 tentatives infructueuses."
	// The app's wrong password and wrong code alike (seed, APPLI COMPTE
	// AMELI, Cas 4 and Cas 5).
	msgAppInvalidEntry = "Les informations saisies sont erronées. Merci de vérifier votre saisie. Attention : 3 essais infructueux bloquent l'accès au service."

	msgNoValidatedEmail     = "Un code de sécurité envoyé par mail est nécessaire pour vous connecter. Or, vous n'avez pas d'adresse mail renseignée dans votre compte. Merci de contacter votre caisse d'assurance maladie."
	msgAffiliationMissing   = "Une mise à jour de votre dossier est nécessaire pour accéder à votre compte. Merci de prendre contact avec votre caisse."
	msgAffiliationPending   = "Votre rattachement à votre caisse d'assurance maladie est en cours, vous pourrez bientôt bénéficier de votre compte ameli."
	msgEmailRecentlyChanged = "Impossible de modifier le mot de passe de votre compte ameli. Une nouvelle adresse mail a été enregistrée dans votre compte ameli depuis moins de 48 heures. Pour des raisons de sécurité, l'accès au changement de mot de passe de votre compte ameli est donc impossible pendant ce délai."

	msgTooManyAttempts = "Pour des raisons de sécurité, trop de tentatives de connexion ont échoué depuis votre réseau. Merci de réessayer plus tard."

	// OTPResentInfo is the app's text when a code was sent again.
	OTPResentInfo = "Un nouveau code vient de vous être envoyé, merci de vérifier votre boîte e-mail, y compris dans le dossier SPAM ou indésirable avant de renouveler votre demande."
)

// appTexts are the messages the seed shows the app wording otherwise than
// the web page. Every other message of the seed is shown on the web only,
// or in the same words on both (Cas 2's expired code), and every channel
// gets it as on the web.
var appTexts = map[string]string{
	CodeInvalidCredentials: msgAppInvalidEntry, // App Cas 4
	CodeOTPInvalid:         msgAppInvalidEntry, // App Cas 5
}

// MessageFor is the French text shown on a channel (SPEC section 4: "web",
// "app", "kiosk", "backoffice"): the app's own words where the seed shows
// them; the BMS kiosks run the app's screens and say what it says (our
// choice, the seed shows no kiosk screen); the back-office, and a request
// that names no channel, get the web's (Message).
func (e *Error) MessageFor(channel string) string {
	if channel == "app" || channel == "kiosk" {
		if text, ok := appTexts[e.Code]; ok {
			return text
		}
	}
	return e.Message()
}

// Message is the French text shown on the web account (and the back-office),
// with the real dates in Paris time, in the seed's format for that message.
// MessageFor gives another channel's words.
func (e *Error) Message() string {
	switch e.Code {
	case CodeInvalidRequest:
		return fmt.Sprintf("Requête invalide : le champ « %s » %s.", e.Field, e.Detail)
	case CodeInvalidCredentials:
		return msgInvalidCredentials
	case CodeAccountLocked:
		switch e.Reason {
		case ReasonPasswordFailures:
			return fmt.Sprintf("Pour des raisons de sécurité, l'accès à votre compte ameli est bloqué jusqu'au %s (heure de Paris). Si vous n'êtes pas sûr de votre mot de passe, cliquez sur le lien « Mot de passe oublié ? » ci-dessous.", FormatLong(e.BlockedUntil))
		case ReasonOTPFailures:
			return fmt.Sprintf("Les informations saisies sont erronées. L'accès au service est bloqué jusqu'au %s (heure de Paris).", FormatDash(e.BlockedUntil))
		case ReasonOTPQuota:
			return quotaMessage(e.BlockedUntil)
		}
		return fmt.Sprintf("Pour des raisons de sécurité, l'accès à votre compte ameli est bloqué jusqu'au %s (heure de Paris).", FormatLong(e.BlockedUntil))
	case CodeOTPQuotaExceeded:
		return quotaMessage(e.BlockedUntil)
	case CodeOTPInvalid:
		return msgOTPInvalid
	case CodeOTPExpired:
		return fmt.Sprintf("Le code de sécurité n'a pas été saisi dans les %d minutes. Merci d'en demander un nouveau.", e.Minutes)
	case CodeNoValidatedEmail:
		return msgNoValidatedEmail
	case CodeAccountDeactivated:
		return fmt.Sprintf("Votre compte a été désactivé le %s. Si vous souhaitez le réactiver, cliquez sur le lien \"Créer un compte\" situé en bas de cet écran. Munissez-vous de votre carte vitale et de votre RIB.", FormatDate(e.DeactivatedAt))
	case CodeAffiliationMissing:
		return msgAffiliationMissing
	case CodeAffiliationPending:
		return msgAffiliationPending
	case CodeLoginExpired:
		return "Votre demande de connexion a expiré. Merci de saisir à nouveau votre numéro de sécurité sociale et votre mot de passe."
	case CodeCodeRequestsExceeded:
		if e.Reason == "email_change" {
			return fmt.Sprintf("Impossible de modifier l'adresse mail de votre compte ameli. La saisie d'un code de confirmation est nécessaire pour sécuriser le changement d'adresse mail de votre compte ameli. Selon nos informations, vous avez déjà demandé 3 codes de confirmation et l'accès au service est bloqué jusqu'au %s - heure de Paris.", FormatComma(e.BlockedUntil))
		}
		return fmt.Sprintf("Impossible de modifier le mot de passe de votre compte ameli. La saisie d'un code de confirmation est nécessaire pour sécuriser le changement de mot de passe de votre compte ameli. Selon nos informations, vous avez déjà demandé 3 codes de confirmation et l'accès au service est bloqué jusqu'au %s - heure de Paris.", FormatComma(e.BlockedUntil))
	case CodeCodeAttemptsExceeded:
		if e.Reason == "email_change" {
			return fmt.Sprintf("Impossible de modifier l'adresse mail de votre compte ameli. Suite à un trop grand nombre d'actions infructueuses, l'accès au service est bloqué jusqu'au %s - heure de Paris.", FormatComma(e.BlockedUntil))
		}
		return fmt.Sprintf("Impossible de modifier le mot de passe de votre compte ameli. Suite à un trop grand nombre d'actions infructueuses, l'accès au service est bloqué jusqu'au %s - heure de Paris.", FormatComma(e.BlockedUntil))
	case CodeEmailRecentlyChanged:
		return msgEmailRecentlyChanged
	case CodeCodeInvalid:
		if e.AttemptsLeft == 0 {
			return "Merci de saisir d'abord le code de confirmation reçu par mail."
		}
		return "Le code de confirmation saisi est erroné. Merci de le vérifier. Attention : l'accès au service sera bloqué après 3 tentatives infructueuses."
	case CodeCodeExpired:
		return fmt.Sprintf("Le code de confirmation n'a pas été saisi dans les %d minutes. Merci de cliquer sur « Renvoyer le code par mail » pour en obtenir un nouveau.", e.Minutes)
	case CodeWeakPassword:
		return "Le mot de passe choisi n'est pas assez sûr : " + e.Detail + "."
	case CodeResetTokenInvalid:
		return "Ce lien de réinitialisation du mot de passe n'est plus valable. Merci de cliquer à nouveau sur « Mot de passe oublié ? » pour en recevoir un nouveau."
	case CodeSessionInvalid:
		return "Votre session a expiré. Merci de vous reconnecter à votre compte ameli."
	case CodeBiometricFailed:
		return "L'authentification biométrique n'a pas fonctionné. Merci de vous connecter avec votre mot de passe et le code de sécurité."
	case CodeBiometricExpired:
		return "Votre connexion biométrique a expiré. Merci de vous connecter avec votre mot de passe et le code de sécurité."
	case CodeAccountExists:
		return "Un compte ameli existe déjà pour ce numéro de sécurité sociale. Si vous avez oublié votre mot de passe, cliquez sur le lien « Mot de passe oublié ? »."
	case CodeAccountNotFound:
		return "Aucun compte ameli ne correspond à cette demande."
	case CodeCodeRequired:
		// Our words (issue 18): the seed has no OpenID Connect screen.
		return "Ce service exige une connexion avec le code de sécurité envoyé par mail. Merci de vous reconnecter avec votre mot de passe et le code de sécurité."
	case CodeGrantInvalid:
		return "Cette autorisation n'est plus valable. Merci de vous reconnecter à votre compte ameli depuis le service."
	case CodeTooManyAttempts:
		// About the network the attempts come from, never the account:
		// the same words for a registered and an unknown NIR (issue 20).
		return msgTooManyAttempts
	}
	return "Le service est momentanément indisponible. Merci de réessayer dans quelques instants."
}

func quotaMessage(until time.Time) string {
	return fmt.Sprintf("Le nombre maximum de demandes de code a été atteint. L'accès au service est bloqué jusqu'au %s (heure de Paris). À la fin du blocage, pensez à vérifier le dossier Spam ou Indésirable de votre boîte mail.", FormatDash(until))
}
