package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/events"
)

// The adviser's subcommands against the real service, by NIR and by id.
func TestAccountAdviserCommands(t *testing.T) {
	e := newTestEnv(t)
	id := e.register(nirB, "jean.dupont@free.fr")
	run := func(args ...string) runResult {
		t.Helper()
		return e.authctl(ctxTimeout(t, 20*time.Second), nil, append([]string{"account"}, args...)...)
	}
	for range 3 {
		e.req("login.password", map[string]any{"nir": nirB, "password": "faux"})
	}
	if r := e.req("login.password", map[string]any{"nir": nirB, "password": password}); r.OK {
		t.Fatal("not blocked")
	}
	for _, c := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"unlock", "--nir", "1 93 33 04 075 242"}, 0, "Compte " + id + " débloqué."},
		{[]string{"set-affiliation", "--account-id", id, "--affiliation", "pending"}, 0, "Affiliation du compte " + id + " enregistrée."},
		{[]string{"set-affiliation", "--account-id", id, "--affiliation", "bientôt"}, 1, "affiliation"},
		{[]string{"revoke-biometrics", "--nir", nirB}, 0, "Connexion biométrique révoquée pour le compte " + id},
		{[]string{"deactivate", "--account-id", id, "--reason", "doublon"}, 0, "Compte " + id + " désactivé."},
		{[]string{"unlock", "--nir", nirA}, 1, ""},
		{[]string{"unlock"}, 2, ""},
		{[]string{"unlock", "--nir", nirB, "--account-id", id}, 2, ""},
	} {
		res := run(c.args...)
		if res.code != c.code || !strings.Contains(res.stdout, c.say) {
			t.Errorf("account %v: exit %d, want %d saying %q\nstdout: %s\nstderr: %s", c.args, res.code, c.code, c.say, res.stdout, res.stderr)
		}
	}
	var types []string
	for _, env := range e.history(id) {
		switch env.Data.(type) {
		case events.AccountUnlocked, events.AffiliationSet, events.AccountDeactivated:
			types = append(types, env.Type)
			if env.Channel != "backoffice" || env.UserAgent != userAgent {
				t.Errorf("%s from channel %q, user agent %q", env.Type, env.Channel, env.UserAgent)
			}
		}
	}
	if strings.Join(types, ",") != "account.unlocked,account.affiliation_set,account.deactivated" {
		t.Errorf("events %v", types)
	}
}

// authctl req prints every reply and exits 1 when it says "ok": false.
func TestRequestExitStatus(t *testing.T) {
	e := newTestEnv(t)
	e.register(nirA, "valerie@yahoo.fr")
	for _, c := range []struct {
		subject, body string
		code          int
		say           string
	}{
		{"login.password", `{"nir":"2690549588157","password":"Motdepasse-2023"}`, 0, `"status": "otp_required"`},
		{"login.password", `{"nir":"2690549588157","password":"faux"}`, 1, `"code": "invalid_credentials"`},
		{"login.password", `{"nir":"2690549588157","pasword":"faux"}`, 1, `"field": "pasword"`},
		{"dev.clock.advance", `{"seconds":60}`, 1, `"ok": false`},
	} {
		res := e.authctl(ctxTimeout(t, 20*time.Second), nil, "req", c.subject, c.body)
		if res.code != c.code || !strings.Contains(res.stdout, c.say) {
			t.Errorf("req %s %s: exit %d, want %d with %q\n%s%s", c.subject, c.body, res.code, c.code, c.say, res.stdout, res.stderr)
		}
	}
}

var reqExample = regexp.MustCompile(`authctl req ([a-z_.]+)(.*)$`)

// Every `authctl req` example of the help texts shows its JSON, and the
// service knows each of its fields: a newcomer can copy them.
func TestRequestExamplesShowTheirJSON(t *testing.T) {
	e := newTestEnv(t)
	seen := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, line := range strings.Split(c.Long+"\n"+c.Example, "\n") {
			m := reqExample.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			seen++
			subject, rest := m[1], strings.TrimSpace(m[2])
			i, j := strings.Index(rest, "'"), strings.LastIndex(rest, "'")
			if i < 0 || j <= i {
				t.Errorf("%s: the example of %s shows no JSON: %s", c.CommandPath(), subject, line)
				continue
			}
			body := strings.ReplaceAll(rest[i+1:j], `'\''`, "'")
			if !json.Valid([]byte(body)) {
				t.Errorf("%s: the example of %s is not JSON: %s", c.CommandPath(), subject, body)
				continue
			}
			if subject == "dev.clock.advance" {
				continue // no dev clock in this service
			}
			rep := e.rawReq(subject, body)
			if rep.Error != nil && rep.Error.Code == "invalid_request" &&
				(rep.Error.Field == "body" || rep.Error.Field == "subject" || strings.Contains(rep.Error.Message, "champ connu")) {
				t.Errorf("%s: the example of %s is refused: %s", c.CommandPath(), subject, rep.Error.Message)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRoot())
	if seen < 15 {
		t.Fatalf("only %d req examples found", seen)
	}
}
