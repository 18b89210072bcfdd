// Package config reads the components' configuration: each setting from its
// AUTH_* environment variable, overridable by a flag of the same name
// (AUTH_NATS_URL -> -nats-url).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// Config is every component's configuration (SPEC section 7).
type Config struct {
	NATSURL      string // unset: dev mode, an embedded nats-server
	NATSListen   string // the embedded server's address
	Prefix       string // subject prefix
	DatabaseURL  string
	SMTPAddr     string // unset in dev: the built-in mail catcher
	SMTPFrom     string
	SMTPTLS      string // "", none, starttls, tls
	SMTPUser     string
	SMTPPassword string
	SecretKey    string // base64, 32 bytes; dev generates one under VarDir
	HTTPAddr     string
	PublicURL    string
	PolicyName   string
	DevClock     bool
	VarDir       string
	LogLevel     string

	Policy domain.Policy
}

type setting struct {
	env, flag, def, help string
	dst                  *string
}

func (c *Config) settings() []setting {
	return []setting{
		{"AUTH_NATS_URL", "nats-url", "", "NATS server URL; unset: start an embedded nats-server (dev mode)", &c.NATSURL},
		{"AUTH_NATS_LISTEN", "nats-listen", "127.0.0.1:4222", "address of the embedded nats-server (a free port if taken)", &c.NATSListen},
		{"AUTH_SUBJECT_PREFIX", "subject-prefix", "auth", "prefix of every subject", &c.Prefix},
		{"AUTH_DATABASE_URL", "database-url", "", "Postgres URL of the read models and the notifier's records", &c.DatabaseURL},
		{"AUTH_SMTP_ADDR", "smtp-addr", "", "SMTP server host:port; unset in dev: the built-in mail catcher", &c.SMTPAddr},
		{"AUTH_SMTP_FROM", "smtp-from", "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>", "sender of the emails", &c.SMTPFrom},
		{"AUTH_SMTP_TLS", "smtp-tls", "", "none, starttls or tls; default: STARTTLS when the server offers it", &c.SMTPTLS},
		{"AUTH_SMTP_USER", "smtp-user", "", "SMTP user (optional)", &c.SMTPUser},
		{"AUTH_SMTP_PASSWORD", "smtp-password", "", "SMTP password (optional)", &c.SMTPPassword},
		{"AUTH_SECRET_KEY", "secret-key", "", "base64 of 32 random bytes; unset in dev: generated under the var dir", &c.SecretKey},
		{"AUTH_HTTP_ADDR", "http-addr", "127.0.0.1:8025", "address of the metrics, health and dev pages", &c.HTTPAddr},
		{"AUTH_PUBLIC_URL", "public-url", "http://127.0.0.1:8025", "base of the links put in emails", &c.PublicURL},
		{"AUTH_POLICY", "policy", "seed", "rules profile: seed or strict", &c.PolicyName},
		{"AUTH_VAR_DIR", "var-dir", "./var", "where dev mode keeps its data (NATS store, secret key, Postgres)", &c.VarDir},
		{"AUTH_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", &c.LogLevel},
	}
}

// Load reads the environment, then the flags in args.
func Load(name string, args []string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range c.settings() {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok {
			def = v
		}
		fs.StringVar(s.dst, s.flag, def, s.help+" ("+s.env+")")
	}
	devClock := os.Getenv("AUTH_DEV_CLOCK") == "1"
	fs.BoolVar(&c.DevClock, "dev-clock", devClock, "serve <prefix>.dev.clock.advance (AUTH_DEV_CLOCK=1); refused in production")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	p, ok := domain.PolicyByName(c.PolicyName)
	if !ok {
		return c, fmt.Errorf("AUTH_POLICY: %q is neither seed nor strict", c.PolicyName)
	}
	c.Policy = p
	switch c.SMTPTLS {
	case "", "none", "starttls", "tls":
	default:
		return c, fmt.Errorf("AUTH_SMTP_TLS: %q is not none, starttls or tls", c.SMTPTLS)
	}
	if c.DevClock && !c.Dev() {
		return c, errors.New("AUTH_DEV_CLOCK=1 is for dev mode only (AUTH_NATS_URL unset)")
	}
	return c, nil
}

// Dev tells whether this is dev mode: no NATS URL given.
func (c Config) Dev() bool { return c.NATSURL == "" }

// Keys returns the secret keys: from AUTH_SECRET_KEY, or in dev mode from
// <var>/secret.key, created at the first start. Production without a key
// refuses to start: a random key would make every sealed value unreadable
// after a restart.
func (c Config) Keys() (*secrets.Keys, error) {
	raw := c.SecretKey
	if raw == "" {
		if !c.Dev() {
			return nil, errors.New("AUTH_SECRET_KEY is required outside dev mode (base64 of 32 random bytes)")
		}
		path := filepath.Join(c.VarDir, "secret.key")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			raw = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			raw = secrets.NewMasterKey()
			if err := os.MkdirAll(c.VarDir, 0o700); err != nil {
				return nil, fmt.Errorf("create %s: %w", c.VarDir, err)
			}
			if err := os.WriteFile(path, []byte(raw+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write %s: %w", path, err)
			}
		default:
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	master, err := secrets.ParseKey(raw)
	if err != nil {
		return nil, err
	}
	return secrets.NewKeys(master)
}
