package cli

import (
	"context"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

func newPasswordCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "password",
		Short: "Change a password (logged in) or reset a forgotten one, from the terminal",
	}
	cmd.AddCommand(newPasswordChangeCmd(), newPasswordResetCmd())
	return cmd
}

type changeOptions struct {
	loginOptions
	session string
}

func newPasswordChangeCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "change",
		Short: "Change the password of a logged-in account: code by email, then the new password",
		Long: `Change a password the way the web site does: log in as authctl login does
(NIR, password, emailed code), or go on from a session token (--session,
from authctl login --print-session), then:

  password.change.start        {"session": …} (and "current_password" under
                               the strict profile): a 4-digit code is mailed
  password.change.verify_code  {"session": …, "code": "1234"}
  password.change.complete     {"session": …, "new_password": …}

The new password is asked twice, without echo on a terminal; the service's
password rule is checked by the service, and its French message shown. The
change keeps this session and closes every other one, the trusted devices
and the biometric enrolments. "nouveau" at the code prompt mails a new code.

Exit status: 0 when the password was changed, 1 when refused.`,
		Example: `  authctl password change
  authctl password change --nir "2 69 05 49 588 157"
  authctl password change --session "$TOKEN"

  # the same, one command at a time:
  authctl req password.change.start '{"session":"TOKEN"}'
  authctl req password.change.verify_code '{"session":"TOKEN","code":"1234"}'
  authctl req password.change.complete '{"session":"TOKEN","new_password":"jument-trombone-cerise"}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, done, err := startLogin(cmd, o.loginOptions)
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			if o.session != "" {
				l.session = o.session
			} else if err := l.run(ctx); err != nil {
				return err
			}
			return (&changeRun{loginRun: l}).run(ctx)
		},
	}
	loginFlags(cmd, &o.loginOptions)
	cmd.Flags().StringVar(&o.session, "session", "", "a session token (authctl login --print-session): skips the login")
	return cmd
}

// changeRun is a password change on a logged-in session.
type changeRun struct{ *loginRun }

func (c *changeRun) run(ctx context.Context) error {
	if err := c.start(ctx); err != nil {
		return err
	}
	if err := c.verify(ctx); err != nil {
		return err
	}
	return c.complete(ctx)
}

// start asks for the code; under the strict profile the service wants the
// current password, asked here unless the login just typed it.
func (c *changeRun) start(ctx context.Context) error {
	body := map[string]any{"session": c.session}
	if c.password != "" {
		body["current_password"] = c.password
	}
	for {
		rep, err := c.c.send(ctx, contract.CmdPasswordChangeStart, body)
		if err != nil {
			return err
		}
		if rep.OK {
			if rep.ExpiresAt != nil {
				c.say("Code de confirmation envoyé à %s, valable jusqu'à %s (heure de Paris).", rep.MaskedEmail, hourParis(*rep.ExpiresAt))
			} else {
				c.say("Code de confirmation envoyé à %s.", rep.MaskedEmail)
			}
			return nil
		}
		if rep.Error.Code == domain.CodeInvalidRequest && rep.Error.Field == "current_password" && body["current_password"] == nil {
			pw, err := c.p.secret("Mot de passe actuel : ")
			if err != nil {
				return err
			}
			body["current_password"] = pw
			continue
		}
		c.show(rep.Error)
		return refused
	}
}

func (c *changeRun) verify(ctx context.Context) error {
	for {
		code, err := c.askCode("Code de confirmation reçu par mail (ou « nouveau » pour en recevoir un autre) : ",
			func() error { return c.start(ctx) })
		if err != nil {
			return err
		}
		rep, err := c.c.send(ctx, contract.CmdPasswordChangeVerifyCode, map[string]any{"session": c.session, "code": code})
		if err != nil {
			return err
		}
		if rep.OK {
			c.say("Code vérifié.")
			return nil
		}
		c.show(rep.Error)
		if retryable(rep.Error, "code") {
			continue
		}
		return refused
	}
}

func (c *changeRun) complete(ctx context.Context) error {
	return c.setPassword(ctx, contract.CmdPasswordChangeComplete, map[string]any{"session": c.session},
		"Mot de passe changé. Cette session reste ouverte ; les autres sessions, les appareils de confiance et la connexion biométrique sont fermés.")
}

// setPassword asks the new password until the service takes it or refuses
// for good: subject gets body and "new_password"; done is said on success.
func (l *loginRun) setPassword(ctx context.Context, subject string, body map[string]any, done string) error {
	for {
		pw, err := l.newPassword()
		if err != nil {
			return err
		}
		body["new_password"] = pw
		rep, err := l.c.send(ctx, subject, body)
		if err != nil {
			return err
		}
		if rep.OK {
			l.say("%s", done)
			return nil
		}
		l.show(rep.Error)
		if !retryable(rep.Error, "new_password") {
			return refused
		}
	}
}

// newPassword asks the new password twice, until both agree.
func (l *loginRun) newPassword() (string, error) {
	for {
		pw, err := l.p.secret("Nouveau mot de passe : ")
		if err != nil {
			return "", err
		}
		if pw == "" {
			l.say("Merci de saisir votre nouveau mot de passe.")
			continue
		}
		again, err := l.p.secret("Confirmez le nouveau mot de passe : ")
		if err != nil {
			return "", err
		}
		if again == pw {
			return pw, nil
		}
		l.say("Les deux saisies ne sont pas identiques.")
	}
}

// retryable: a refusal the user can answer by typing field again (a wrong
// code with attempts left, a password the rule refuses).
func retryable(e *replyError, field string) bool {
	switch e.Code {
	case domain.CodeCodeInvalid, domain.CodeOTPInvalid:
		return true
	case domain.CodeWeakPassword:
		return field == "new_password"
	case domain.CodeInvalidRequest:
		return e.Field == field
	}
	return false
}

func newPasswordResetCmd() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Reset a forgotten password: a link by email, then the new password",
		Long: `Reset a forgotten password the way the web site's "Mot de passe oublié ?"
does:

  password.reset.request   {"nir": "2690549588157"}: a single-use link is
                           mailed (the reply is the same whether or not the
                           NIR has an account)
  password.reset.complete  {"token": …, "new_password": …}

Paste the link received by email (or the token after "token=" in it); the
new password is asked twice, without echo on a terminal. A reset closes
every session, the trusted devices and the biometric enrolments, and lifts
a block by wrong passwords.

Exit status: 0 when the password was reset, 1 when refused.`,
		Example: `  authctl password reset
  authctl password reset --nir "2 69 05 49 588 157"

  # the same, one command at a time:
  authctl req password.reset.request '{"nir":"2690549588157"}'
  authctl req password.reset.complete '{"token":"TOKEN","new_password":"jument-trombone-cerise"}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, done, err := startLogin(cmd, o)
			if err != nil {
				return err
			}
			defer done()
			return (&resetRun{loginRun: l}).run(cmd.Context())
		},
	}
	loginFlags(cmd, &o)
	return cmd
}

// resetRun is a forgotten-password reset.
type resetRun struct{ *loginRun }

func (r *resetRun) run(ctx context.Context) error {
	if err := r.askNIR(); err != nil {
		return err
	}
	rep, err := r.c.send(ctx, contract.CmdPasswordResetRequest, map[string]any{"nir": r.nir})
	if err != nil {
		return err
	}
	if !rep.OK {
		r.show(rep.Error)
		return refused
	}
	r.say("Si ce numéro correspond à un compte avec une adresse mail validée, un lien de réinitialisation vient d'y être envoyé.")
	token, err := r.askToken()
	if err != nil {
		return err
	}
	return r.setPassword(ctx, contract.CmdPasswordResetComplete, map[string]any{"token": token},
		"Mot de passe réinitialisé : connectez-vous avec le nouveau (authctl login).")
}

// askToken reads the link, or the token alone.
func (r *resetRun) askToken() (string, error) {
	for {
		s, err := r.p.line("Lien reçu par mail (ou son jeton) : ")
		if err != nil {
			return "", err
		}
		if token := resetToken(s); token != "" {
			return token, nil
		}
		r.say("Merci de coller le lien reçu par mail.")
	}
}

// resetToken is the token of a reset link (its token parameter), or s
// itself when it is not a link.
func resetToken(s string) string {
	s = strings.TrimSpace(s)
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return u.Query().Get("token")
	}
	if _, t, ok := strings.Cut(s, "token="); ok {
		t, _, _ = strings.Cut(t, "&")
		if v, err := url.QueryUnescape(t); err == nil {
			return v
		}
		return t
	}
	return s
}
