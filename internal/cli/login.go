package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

type loginOptions struct {
	channel      string
	nir          string
	devicesFile  string
	timeout      time.Duration
	printSession bool
}

func newLoginCmd() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in from the terminal as the web site or the app does (NIR, password, emailed code)",
		Long: `Log in to an account the way the web site (or the app) does, by sending
the same commands: login.password with the NIR and the password (and the
trusted-device token of this NIR, if one was remembered), then login.otp.send,
then login.otp.verify with the 6-digit code received by email.

The password is read without echo when standard input is a terminal, and as a
line otherwise (so a script can pipe the answers: NIR, password, code, o/n).
The service's French messages are shown as they come: wrong password or code
with the attempts left, blocks with their end in Paris time. When the code
has expired, authctl offers to ask a new one; typing "nouveau" at the code
prompt asks a new one too.

"Se souvenir de cet appareil" keeps the trusted-device token (valid 6 months)
in the devices file (default <config dir>/ameli-auth/devices.json, mode
0600), keyed by a salted SHA-256 HMAC of the NIR, never by the NIR itself; the
next login of that NIR on this machine then needs no code.

Exit status: 0 when logged in, 1 when the login was refused.`,
		Example: `  authctl login
  authctl login --nir "2 69 05 49 588 157" --channel app
  printf '2690549588157\nMotdepasse-2023\n' | authctl login   # with a remembered device: no code`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, done, err := startLogin(cmd, o)
			if err != nil {
				return err
			}
			defer done()
			return l.run(cmd.Context())
		},
	}
	loginFlags(cmd, &o)
	cmd.Flags().BoolVar(&o.printSession, "print-session", false,
		`print the session token, to use it with authctl req, e.g. password.change.start '{"session":"TOKEN"}'`)
	return cmd
}

// loginFlags are the flags of the commands that start with a login.
func loginFlags(cmd *cobra.Command, o *loginOptions) {
	cmd.Flags().StringVar(&o.channel, "channel", "web", "front-end to act as: web or app")
	cmd.Flags().StringVar(&o.nir, "nir", "", "the NIR (skips its prompt)")
	cmd.Flags().StringVar(&o.devicesFile, "devices-file", "", "where trusted-device tokens are kept (default <config dir>/ameli-auth/devices.json)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for each reply")
}

// startLogin checks the options and connects; done closes the connection
// and puts the terminal back.
func startLogin(cmd *cobra.Command, o loginOptions) (l *loginRun, done func(), err error) {
	switch o.channel {
	case "web", "app":
	default:
		return nil, nil, usagef("--channel: %q is neither web nor app", o.channel)
	}
	if o.nir != "" {
		if _, err := domain.ParseNIR(o.nir); err != nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Le numéro de sécurité sociale %s.\n", err)
			return nil, nil, refused
		}
	}
	if o.devicesFile == "" {
		o.devicesFile = defaultDevicesFile()
	}
	nc, prefix, err := connect(cmd, asFrontend)
	if err != nil {
		return nil, nil, err
	}
	restore := func() {}
	in := cmd.InOrStdin()
	if f, ok := terminal(in); ok {
		restore = restoreTerminalOnInterrupt(f)
	}
	l = &loginRun{
		opts: o, c: newClient(nc, prefix, o.channel, o.timeout),
		p: newPrompter(in, cmd.OutOrStdout()), out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(),
	}
	return l, func() { restore(); nc.Close() }, nil
}

// restoreTerminalOnInterrupt puts the terminal back (echo on) if Ctrl-C
// arrives while the password is read without echo.
func restoreTerminalOnInterrupt(f *os.File) func() {
	state, err := term.GetState(int(f.Fd()))
	if err != nil {
		return func() {}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			_ = term.Restore(int(f.Fd()), state)
			fmt.Fprintln(os.Stderr)
			if sig == syscall.SIGTERM {
				os.Exit(143)
			}
			os.Exit(130)
		case <-done:
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// loginRun is one login conversation.
type loginRun struct {
	opts loginOptions
	c    *client
	p    *prompter
	out  io.Writer
	errw io.Writer

	nir     string // canonical
	devices *deviceStore
	loginID string

	// What the conversation ended with, for the commands that go on from
	// a login (authctl password change).
	password string // the password that was accepted
	session  string // the session's token
}

// refused ends the login: the reason was shown.
var refused = silentExit(1)

func (l *loginRun) say(format string, args ...any) { fmt.Fprintf(l.out, format+"\n", args...) }

// show prints a refusal of the service: its French message and what the
// user can still do.
func (l *loginRun) show(e *replyError) {
	l.say("%s", e.Message)
	if e.AttemptsLeft > 0 {
		s := "s"
		if e.AttemptsLeft == 1 {
			s = ""
		}
		l.say("Il vous reste %d essai%s.", e.AttemptsLeft, s)
	}
}

func (l *loginRun) run(ctx context.Context) error {
	if err := l.askNIR(); err != nil {
		return err
	}
	devices, err := loadDevices(l.opts.devicesFile)
	if err != nil {
		fmt.Fprintf(l.errw, "authctl: %v (appareils mémorisés ignorés)\n", err)
	}
	l.devices = devices
	done, err := l.passwordStep(ctx)
	if err != nil || done {
		return err
	}
	return l.codeStep(ctx)
}

func (l *loginRun) askNIR() error {
	raw := l.opts.nir
	for tries := 0; ; tries++ {
		if raw == "" {
			var err error
			if raw, err = l.p.line("Numéro de sécurité sociale (13 caractères) : "); err != nil {
				return err
			}
		}
		nir, err := domain.ParseNIR(raw)
		if err == nil {
			l.nir = nir
			return nil
		}
		l.say("Le numéro de sécurité sociale %s.", err)
		if l.opts.nir != "" || tries >= 2 {
			return refused
		}
		raw = ""
	}
}

// passwordStep sends login.password until the password is right; done is
// true when a remembered device logged in without a code.
func (l *loginRun) passwordStep(ctx context.Context) (done bool, err error) {
	token := l.devices.token(l.nir)
	for {
		pw, err := l.p.secret("Mot de passe : ")
		if err != nil {
			return false, err
		}
		if pw == "" {
			l.say("Merci de saisir votre mot de passe.")
			continue
		}
		body := map[string]any{"nir": l.nir, "password": pw}
		if token != "" {
			body["device_token"] = token
		}
		rep, err := l.c.send(ctx, contract.CmdLoginPassword, body)
		if err != nil {
			return false, err
		}
		if !rep.OK {
			l.show(rep.Error)
			if rep.Error.Code == domain.CodeInvalidCredentials {
				continue // the service blocks the account at the 3rd failure
			}
			return false, refused
		}
		l.password = pw
		switch rep.Status {
		case contract.StatusAuthenticated:
			l.say("Appareil reconnu : pas de code de sécurité à saisir.")
			return true, l.connected(rep)
		case contract.StatusOTPRequired:
			l.loginID = rep.LoginID
			if token != "" {
				// The service no longer trusts this device (expired, revoked
				// by a password reset, or another account's token).
				if err := l.devices.forget(l.nir); err != nil {
					fmt.Fprintf(l.errw, "authctl: %v\n", err)
				}
			}
			return false, nil
		}
		return false, fmt.Errorf("login.password: unexpected status %q", rep.Status)
	}
}

// sendCode asks the service to mail a code.
func (l *loginRun) sendCode(ctx context.Context) error {
	rep, err := l.c.send(ctx, contract.CmdLoginOTPSend, map[string]any{"login_id": l.loginID})
	if err != nil {
		return err
	}
	if !rep.OK {
		l.show(rep.Error)
		return refused
	}
	if rep.Message != "" {
		l.say("%s", rep.Message)
	}
	if rep.ExpiresAt != nil {
		l.say("Code envoyé à %s, valable jusqu'à %s (heure de Paris).", rep.MaskedEmail, hourParis(*rep.ExpiresAt))
	} else {
		l.say("Code envoyé à %s.", rep.MaskedEmail)
	}
	return nil
}

func (l *loginRun) codeStep(ctx context.Context) error {
	if err := l.sendCode(ctx); err != nil {
		return err
	}
	remember, asked := false, false
	for {
		code, err := l.askCode("Code de sécurité reçu par mail (ou « nouveau » pour en recevoir un autre) : ",
			func() error { return l.sendCode(ctx) })
		if err != nil {
			return err
		}
		if !asked {
			if remember, err = l.p.yesNo("Se souvenir de cet appareil ? (o/N) ", false); err != nil {
				return err
			}
			asked = true
		}
		rep, err := l.c.send(ctx, contract.CmdLoginOTPVerify, map[string]any{"login_id": l.loginID, "code": code, "remember_device": remember})
		if err != nil {
			return err
		}
		if rep.OK {
			return l.connected(rep)
		}
		l.show(rep.Error)
		switch rep.Error.Code {
		case domain.CodeOTPInvalid:
			continue
		case domain.CodeInvalidRequest:
			if rep.Error.Field == "code" {
				continue
			}
		case domain.CodeOTPExpired:
			again, err := l.p.yesNo("Demander un nouveau code ? (O/n) ", true)
			if err != nil {
				return err
			}
			if !again {
				return refused
			}
			if err := l.sendCode(ctx); err != nil {
				return err
			}
			continue
		}
		return refused
	}
}

// askCode reads a code; "nouveau" (or "renvoyer") calls resend, which
// asks the service for another, and asks again.
func (l *loginRun) askCode(prompt string, resend func() error) (string, error) {
	for {
		code, err := l.p.line(prompt)
		if err != nil {
			return "", err
		}
		switch strings.ToLower(code) {
		case "":
			continue
		case "nouveau", "renvoyer":
			if err := resend(); err != nil {
				return "", err
			}
			continue
		}
		return code, nil
	}
}

// connected reports an opened session and keeps a new device token.
func (l *loginRun) connected(rep reply) error {
	if rep.Status != contract.StatusAuthenticated || rep.Session == nil {
		return fmt.Errorf("unexpected reply: status %q", rep.Status)
	}
	l.session = rep.Session.Token
	l.say("Connecté : compte %s, session valable jusqu'à %s (heure de Paris).", rep.AccountID, hourParis(rep.Session.ExpiresAt))
	if rep.DeviceToken != "" {
		if err := l.devices.put(l.nir, rep.DeviceToken, deref(rep.DeviceTokenExpiresAt)); err != nil {
			fmt.Fprintf(l.errw, "authctl: appareil non mémorisé: %v\n", err)
		} else if rep.DeviceTokenExpiresAt != nil {
			l.say("Appareil mémorisé jusqu'au %s (heure de Paris) : la prochaine connexion ne demandera pas de code.",
				strings.Replace(dayHourParis(*rep.DeviceTokenExpiresAt), " ", " à ", 1))
		}
	}
	if rep.OfferBiometric != nil && *rep.OfferBiometric {
		l.say("L'application vous proposerait maintenant d'activer la connexion biométrique (biometric.offer).")
	}
	if l.opts.printSession {
		l.say("Jeton de session : %s", rep.Session.Token)
	}
	return nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
