package config

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The NATS client settings: a user with its password (from a file, as the
// secret key), or a .creds file; TLS; the inbox each user reads its replies
// on. What cannot work is refused at start, naming the variables.
func TestNATSClientSettings(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "nats.pw")
	if err := os.WriteFile(pwFile, []byte("n4ts-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"AUTH_NATS_URL": "tls://nats-1:4222", "AUTH_SECRET_KEY": key}
	cases := []struct {
		name  string
		env   map[string]string
		inbox string
		err   []string
	}{
		{name: "no_user_is_anonymous_with_the_default_inbox", inbox: ""},
		{name: "a_user_and_its_password_file_read_replies_under_its_own_inbox",
			env:   map[string]string{"AUTH_NATS_USER": "commands", "AUTH_NATS_PASSWORD_FILE": pwFile},
			inbox: "_INBOX.commands"},
		{name: "an_explicit_inbox_under_INBOX_wins",
			env:   map[string]string{"AUTH_NATS_USER": "commands", "AUTH_NATS_PASSWORD": "pw", "AUTH_NATS_INBOX_PREFIX": "_INBOX.cmd-a"},
			inbox: "_INBOX.cmd-a"},
		{name: "a_creds_file_with_its_inbox", env: map[string]string{"AUTH_NATS_CREDS": "/run/secrets/commands.creds", "AUTH_NATS_INBOX_PREFIX": "_INBOX.commands"},
			inbox: "_INBOX.commands"},
		{name: "tls_ca_and_a_client_certificate",
			env: map[string]string{"AUTH_NATS_TLS_CA": "/ca.pem", "AUTH_NATS_TLS_CERT": "/c.pem", "AUTH_NATS_TLS_KEY": "/k.pem"}},
		{name: "a_user_without_password_is_refused", env: map[string]string{"AUTH_NATS_USER": "commands"},
			err: []string{"AUTH_NATS_USER", "AUTH_NATS_PASSWORD_FILE"}},
		{name: "a_password_without_user_is_refused", env: map[string]string{"AUTH_NATS_PASSWORD": "pw"},
			err: []string{"without AUTH_NATS_USER"}},
		{name: "a_user_and_a_creds_file_are_refused",
			env: map[string]string{"AUTH_NATS_USER": "commands", "AUTH_NATS_PASSWORD": "pw", "AUTH_NATS_CREDS": "/x.creds"},
			err: []string{"AUTH_NATS_USER and AUTH_NATS_CREDS are both set"}},
		{name: "a_certificate_without_its_key_is_refused", env: map[string]string{"AUTH_NATS_TLS_CERT": "/c.pem"},
			err: []string{"AUTH_NATS_TLS_CERT and AUTH_NATS_TLS_KEY go together"}},
		{name: "an_inbox_outside_INBOX_is_refused", env: map[string]string{"AUTH_NATS_INBOX_PREFIX": "replies.web"},
			err: []string{"AUTH_NATS_INBOX_PREFIX", "answers no other reply subject"}},
		{name: "an_inbox_with_a_wildcard_is_refused", env: map[string]string{"AUTH_NATS_INBOX_PREFIX": "_INBOX.*"},
			err: []string{"AUTH_NATS_INBOX_PREFIX", "without wildcards"}},
		{name: "a_user_that_cannot_name_an_inbox_asks_for_one",
			env: map[string]string{"AUTH_NATS_USER": "front end", "AUTH_NATS_PASSWORD": "pw"},
			err: []string{"AUTH_NATS_USER", "set AUTH_NATS_INBOX_PREFIX"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadComponent(Commands, nil, io.Discard)
			if len(c.err) > 0 {
				if err == nil {
					t.Fatalf("loaded %+v, want an error", cfg.NATS)
				}
				for _, want := range c.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if strings.Contains(err.Error(), "pw") && !strings.Contains(err.Error(), "_FILE") {
					t.Errorf("error %q may show the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.NATS.Inbox(); got != c.inbox {
				t.Errorf("inbox %q, want %q", got, c.inbox)
			}
			// authctl reads the same variables from the environment alone.
			n, err := LoadNATSClient()
			if err != nil || n != cfg.NATS {
				t.Errorf("LoadNATSClient = %+v, %v; want %+v", n, err, cfg.NATS)
			}
		})
	}
	t.Run("the_password_file_is_read_and_never_shown", func(t *testing.T) {
		clearEnv(t)
		for k, v := range base {
			t.Setenv(k, v)
		}
		t.Setenv("AUTH_NATS_USER", "projector")
		t.Setenv("AUTH_NATS_PASSWORD_FILE", pwFile)
		t.Setenv("AUTH_DATABASE_URL", "postgres://x")
		cfg, err := LoadComponent(Projector, nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NATS.Password != "n4ts-pw" {
			t.Fatalf("password %q from the file", cfg.NATS.Password)
		}
		var buf strings.Builder
		cfg.Log(slog.New(slog.NewTextHandler(&buf, nil)), Projector)
		for _, want := range []string{"config.AUTH_NATS_USER=projector", `config.AUTH_NATS_PASSWORD="(set, masked)"`, "config.AUTH_NATS_INBOX_PREFIX=_INBOX.projector"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("the configuration line lacks %s:\n%s", want, buf.String())
			}
		}
		if strings.Contains(buf.String(), "n4ts-pw") {
			t.Errorf("the configuration line shows the NATS password:\n%s", buf.String())
		}
	})
	t.Run("a_password_is_refused_as_a_flag", func(t *testing.T) {
		clearEnv(t)
		_, err := Load("commands", []string{"-nats-password=x"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "AUTH_NATS_PASSWORD_FILE") || strings.Contains(err.Error(), "=x") {
			t.Fatalf("err = %v", err)
		}
	})
}

// Postgres over TLS is configured in AUTH_DATABASE_URL (sslmode,
// sslrootcert...): the printed configuration keeps those and masks every
// password, in URL and in keyword/value form.
func TestDatabaseURLWithTLSIsPrintedWithoutItsPassword(t *testing.T) {
	for _, c := range []struct{ url, keep, secret string }{
		{"postgres://auth:db%23pw@db:5432/auth?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.pem", "sslmode=verify-full", "db%23pw"},
		{"postgresql://auth@db/auth?sslmode=verify-full&password=dbpw2&sslpassword=keypw", "sslmode=verify-full", "dbpw2"},
		{"postgresql://auth@db/auth?sslmode=verify-full&password=dbpw2&sslpassword=keypw", "sslrootcert", "keypw"},
		{"host=db user=auth password=dbpw3 sslmode=verify-full sslrootcert=/ca.pem", "sslrootcert=/ca.pem", "dbpw3"},
		{"host=db password='d b\\'pw4' sslmode=require", "sslmode=require", "pw4"},
		{"host=db sslpassword=keypw5 sslmode=verify-ca user=auth", "user=auth", "keypw5"},
	} {
		clearEnv(t)
		t.Setenv("AUTH_DATABASE_URL", c.url)
		cfg, err := Load("projector", nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		cfg.Log(slog.New(slog.NewTextHandler(&buf, nil)), Projector)
		line := buf.String()
		if strings.Contains(line, c.secret) {
			t.Errorf("%s: the configuration line shows %q:\n%s", c.url, c.secret, line)
		}
		if c.keep != "sslrootcert" && !strings.Contains(line, c.keep) {
			t.Errorf("%s: the configuration line lost %q:\n%s", c.url, c.keep, line)
		}
	}
}

// .env.example's placeholder passes compose's ${VAR:?} check; a component
// refuses it, as a NATS password or in the database URL, without
// printing a URL.
func TestPlaceholderPasswordsAreRefused(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"nats password": {"AUTH_NATS_USER": "projector", "AUTH_NATS_PASSWORD": Placeholder},
		"database url":  {"AUTH_DATABASE_URL": "postgres://auth:" + Placeholder + "@postgres:5432/auth?sslmode=disable"},
	} {
		clearEnv(t)
		t.Setenv("AUTH_NATS_URL", "nats://n")
		t.Setenv("AUTH_DATABASE_URL", "postgres://auth:pw@postgres:5432/auth")
		for k, v := range env {
			t.Setenv(k, v)
		}
		_, err := LoadComponent(Projector, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), Placeholder) || strings.Contains(err.Error(), "postgres://") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
