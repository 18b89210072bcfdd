package cli

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

const newPassword = "jument-trombone-cerise"

// conversation runs authctl with a pipe as its input, written as the test
// goes: the codes are known only once authctl has asked for them.
type conversation struct {
	t    *testing.T
	pw   *io.PipeWriter
	done chan runResult
}

func (e *testEnv) converse(args ...string) *conversation {
	pr, pw := io.Pipe()
	c := &conversation{t: e.t, pw: pw, done: make(chan runResult, 1)}
	go func() {
		c.done <- e.authctl(ctxTimeout(e.t, 30*time.Second), pr, args...)
		pr.Close()
	}()
	e.t.Cleanup(func() { pw.Close() })
	return c
}

func (c *conversation) write(lines ...string) {
	c.t.Helper()
	if _, err := io.WriteString(c.pw, strings.Join(lines, "\n")+"\n"); err != nil {
		c.t.Fatalf("write %q: %v", lines, err)
	}
}

func (c *conversation) end() runResult {
	c.t.Helper()
	select {
	case res := <-c.done:
		return res
	case <-time.After(30 * time.Second):
		c.t.Fatal("authctl did not finish")
		return runResult{}
	}
}

func wrongCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%0*d", len(code), (n+1)%pow10(len(code)))
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

func mustSay(t *testing.T, res runResult, lines ...string) {
	t.Helper()
	for _, want := range lines {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
}

// authctl password change: the login as authctl login does it, the
// 4-digit code read from the stream (a wrong one first), two new passwords
// that differ, one the rule refuses, then the new password; the account
// then opens with it only. Then again from a session token.
func TestPasswordChangeScripted(t *testing.T) {
	e := newTestEnv(t)
	id := e.register(nirA, "valerie@yahoo.fr")

	c := e.converse("password", "change", "--devices-file", e.devices)
	c.write(nirA, password)
	c.write(e.waitCode(id, 1), "n")
	code := e.waitChangeCode(id, 1)
	if len(code) != 4 {
		t.Fatalf("change code %q: want 4 digits", code)
	}
	c.write(wrongCode(code), code)
	c.write("premier-essai-de-mot", "second-essai-de-mot", "abc", "abc", newPassword, newPassword)
	res := c.end()
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	mustSay(t, res, "Connecté : compte "+id, "Code de confirmation envoyé à v***@y***.fr, valable jusqu'à",
		"(heure de Paris)", "Il vous reste", "Code vérifié.", "Les deux saisies ne sont pas identiques.", "Mot de passe changé.")
	if strings.Contains(res.stdout, newPassword) || strings.Contains(res.stdout, code+"\n") {
		t.Error("the output shows the new password or the code")
	}
	if r := e.req("login.password", map[string]any{"nir": nirA, "password": newPassword}); r.Status != "otp_required" {
		t.Fatalf("the new password does not open the account: %+v", r.Error)
	}
	if r := e.req("login.password", map[string]any{"nir": nirA, "password": password}); r.OK {
		t.Fatal("the old password still opens the account")
	}

	// From a session token (authctl login --print-session): no login.
	login := e.req("login.password", map[string]any{"nir": nirA, "password": newPassword})
	e.req("login.otp.send", map[string]any{"login_id": login.LoginID})
	v := e.req("login.otp.verify", map[string]any{"login_id": login.LoginID, "code": e.waitCode(id, 2)})
	if v.Session == nil {
		t.Fatalf("no session: %+v", v.Error)
	}
	c = e.converse("password", "change", "--session", v.Session.Token)
	c.write(e.waitChangeCode(id, 2), password, password)
	res = c.end()
	if res.code != 0 || strings.Contains(res.stdout, "Connecté") {
		t.Fatalf("exit %d (a login?)\n%s%s", res.code, res.stdout, res.stderr)
	}
	var methods []string
	for _, env := range e.history(id) {
		if pc, ok := env.Data.(events.PasswordChanged); ok {
			methods = append(methods, pc.Method)
		}
	}
	if strings.Join(methods, ",") != "change,change" {
		t.Errorf("password.changed methods %v", methods)
	}

	// A session that is not one: refused, exit 1, the service's message.
	c = e.converse("password", "change", "--session", "pas-une-session")
	res = c.end()
	if res.code != 1 || res.stdout == "" {
		t.Fatalf("a bad session: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// authctl password reset: the NIR, the link read from the stream as the
// notifier builds it, the new password; a forged token is refused.
func TestPasswordResetScripted(t *testing.T) {
	e := newTestEnv(t)
	id := e.register(nirA, "valerie@yahoo.fr")
	for range 3 { // blocked: a reset lifts it
		e.req("login.password", map[string]any{"nir": nirA, "password": "faux"})
	}

	c := e.converse("password", "reset")
	c.write("2 69 05 49 588 157")
	token := e.waitResetToken(id, 1)
	c.write("http://127.0.0.1:8025/password/reset?token="+url.QueryEscape(token), newPassword, newPassword)
	res := c.end()
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	mustSay(t, res, "un lien de réinitialisation vient d'y être envoyé", "Mot de passe réinitialisé")
	if strings.Contains(res.stdout, token) {
		t.Error("the output shows the token")
	}
	if r := e.req("login.password", map[string]any{"nir": nirA, "password": newPassword}); r.Status != "otp_required" {
		t.Fatalf("the new password does not open the account: %+v", r.Error)
	}

	// The same link twice, or a forged one: refused, exit 1.
	for _, bad := range []string{token, id + ".forged"} {
		c = e.converse("password", "reset", "--nir", nirA)
		c.write(bad, password, password)
		if res := c.end(); res.code != 1 || !strings.Contains(res.stdout, "lien") {
			t.Fatalf("token %q: exit %d\n%s%s", bad, res.code, res.stdout, res.stderr)
		}
	}
}

func TestResetTokenFromTheLink(t *testing.T) {
	for in, want := range map[string]string{
		"https://ameli.example/password/reset?token=01ABC.xyz%2B1": "01ABC.xyz+1",
		"  01ABC.xyz  ":                        "01ABC.xyz",
		"password/reset?token=01ABC.xyz&x=1":   "01ABC.xyz",
		"https://ameli.example/password/reset": "",
	} {
		if got := resetToken(in); got != want {
			t.Errorf("resetToken(%q) = %q, want %q", in, got, want)
		}
	}
}
