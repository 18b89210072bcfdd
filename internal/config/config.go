// Package config reads the components' configuration: each setting from its
// AUTH_* environment variable, overridable by a flag of the same name
// (AUTH_NATS_URL -> -nats-url). Secrets are the exception: they come from
// the environment or a file (AUTH_SECRET_KEY or AUTH_SECRET_KEY_FILE), never
// from a flag, which anyone on the machine can read in `ps`.
//
// The mode is explicit: production (the default) or dev (AUTH_MODE=dev, or
// `authctl dev`). Only dev mode embeds a nats-server, generates a secret key
// and catches mail; production refuses to start without what it needs,
// naming every missing variable.
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

// The modes (AUTH_MODE).
const (
	ModeProduction = "production"
	ModeDev        = "dev"
)

// The variables a component may need (see Component).
const (
	EnvNATSURL     = "AUTH_NATS_URL"
	EnvSecretKey   = "AUTH_SECRET_KEY"
	EnvDatabaseURL = "AUTH_DATABASE_URL"
	EnvSMTPAddr    = "AUTH_SMTP_ADDR"
)

// Config is every component's configuration (SPEC section 7).
type Config struct {
	Mode         string // ModeProduction ("" reads as production) or ModeDev
	NATSURL      string // unset in dev mode: an embedded nats-server
	NATSListen   string // the embedded server's address
	Prefix       string // subject prefix
	DatabaseURL  string
	SMTPAddr     string // unset in dev: the built-in mail catcher
	SMTPFrom     string
	SMTPTLS      string // "", none, starttls, tls
	SMTPUser     string
	SMTPPassword string // from AUTH_SMTP_PASSWORD or AUTH_SMTP_PASSWORD_FILE
	SecretKey    string // base64, 32 bytes, from AUTH_SECRET_KEY or AUTH_SECRET_KEY_FILE; dev generates one under VarDir
	HTTPAddr     string
	WebAddr      string // the web front-end (cmd/web, and authctl dev)
	PublicURL    string
	PolicyName   string
	DevClock     bool // AUTH_DEV_CLOCK=1: <prefix>.dev.clock.advance moves the clock, in any mode
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
		{"AUTH_MODE", "mode", ModeProduction, "production, or dev: embedded nats-server, generated secret key, mail catcher", &c.Mode},
		{EnvNATSURL, "nats-url", "", "NATS server URL; required in production; unset in dev mode: an embedded nats-server", &c.NATSURL},
		{"AUTH_NATS_LISTEN", "nats-listen", "127.0.0.1:4222", "address of the embedded nats-server (a free port if taken)", &c.NATSListen},
		{"AUTH_SUBJECT_PREFIX", "subject-prefix", "auth", "prefix of every subject", &c.Prefix},
		{EnvDatabaseURL, "database-url", "", "Postgres URL of the read models and the notifier's records", &c.DatabaseURL},
		{EnvSMTPAddr, "smtp-addr", "", "SMTP server host:port; unset in dev mode: the built-in mail catcher", &c.SMTPAddr},
		{"AUTH_SMTP_FROM", "smtp-from", "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>", "sender of the emails", &c.SMTPFrom},
		{"AUTH_SMTP_TLS", "smtp-tls", "", "none, starttls or tls; default: STARTTLS when the server offers it", &c.SMTPTLS},
		{"AUTH_SMTP_USER", "smtp-user", "", "SMTP user (optional; the password comes from AUTH_SMTP_PASSWORD or AUTH_SMTP_PASSWORD_FILE)", &c.SMTPUser},
		{"AUTH_HTTP_ADDR", "http-addr", "127.0.0.1:8025", "address of the metrics, health and dev pages", &c.HTTPAddr},
		{"AUTH_WEB_ADDR", "web-addr", "127.0.0.1:8080", "address of the web front-end (dev: the next free port when taken)", &c.WebAddr},
		{"AUTH_PUBLIC_URL", "public-url", "http://127.0.0.1:8080", "base of the links put in emails: the web front-end's URL (dev: its actual URL unless set)", &c.PublicURL},
		{"AUTH_POLICY", "policy", "seed", "rules profile: seed or strict", &c.PolicyName},
		{"AUTH_VAR_DIR", "var-dir", "./var", "where dev mode keeps its data (NATS store, secret key, Postgres)", &c.VarDir},
		{"AUTH_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", &c.LogLevel},
	}
}

// secret is a setting read from VAR or from the file named by VAR_FILE.
type secret struct {
	env string
	dst *string
}

func (c *Config) secrets() []secret {
	return []secret{{EnvSecretKey, &c.SecretKey}, {"AUTH_SMTP_PASSWORD", &c.SMTPPassword}}
}

// removedFlags were secrets on the command line.
var removedFlags = map[string]string{"secret-key": EnvSecretKey, "smtp-password": "AUTH_SMTP_PASSWORD"}

// Load reads the environment, then the flags in args. It checks what every
// component shares; LoadComponent also checks what one component needs.
func Load(name string, args []string, out io.Writer) (Config, error) {
	var c Config
	for _, a := range args {
		if a == "--" {
			break
		}
		flagName, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if env, ok := removedFlags[flagName]; ok && strings.HasPrefix(a, "-") {
			// Never echo a: it may hold the secret.
			return c, fmt.Errorf("-%s is not accepted: a secret on the command line shows in ps; set %s or %s_FILE", flagName, env, env)
		}
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range c.settings() {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok {
			def = v
		}
		fs.StringVar(s.dst, s.flag, def, s.help+" ("+s.env+")")
	}
	devClock, err := parseDevClock(os.Getenv("AUTH_DEV_CLOCK"))
	if err != nil {
		return c, err
	}
	fs.BoolVar(&c.DevClock, "dev-clock", devClock, "serve or follow <prefix>.dev.clock.advance, in any mode; for dev and test deployments only (AUTH_DEV_CLOCK=1)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch c.Mode {
	case ModeProduction, ModeDev:
	default:
		return c, fmt.Errorf("AUTH_MODE: %q is neither %s nor %s", c.Mode, ModeProduction, ModeDev)
	}
	for _, s := range c.secrets() {
		if *s.dst, err = readSecret(s.env); err != nil {
			return c, err
		}
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
	return c, nil
}

func parseDevClock(v string) (bool, error) {
	switch v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("AUTH_DEV_CLOCK: %q is neither 1 (on) nor 0 (off)", v)
}

// readSecret reads VAR, or the file named by VAR_FILE (surrounding
// whitespace trimmed, as editors add a final newline). Errors never carry
// the secret.
func readSecret(env string) (string, error) {
	fileEnv := env + "_FILE"
	v, path := os.Getenv(env), os.Getenv(fileEnv)
	switch {
	case v != "" && path != "":
		return "", fmt.Errorf("%s and %s are both set: set only one", env, fileEnv)
	case path == "":
		return v, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", fileEnv, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", fileEnv, path)
	}
	return s, nil
}

// Component names a binary and the variables it cannot start without in
// production mode.
type Component struct {
	Name  string
	Needs []string // among EnvNATSURL, EnvSecretKey, EnvDatabaseURL, EnvSMTPAddr
}

// The three binaries. The projector holds no secret: it never reads a
// sealed value nor computes a keyed hash, so it is not given the key.
var (
	Commands  = Component{"commands", []string{EnvNATSURL, EnvSecretKey}}
	Projector = Component{"projector", []string{EnvNATSURL, EnvDatabaseURL}}
	Notifier  = Component{"notifier", []string{EnvNATSURL, EnvSecretKey, EnvDatabaseURL, EnvSMTPAddr}}
)

// LoadComponent loads the configuration of one binary and refuses, naming
// every missing variable, to start it without what it needs. Dev mode
// stands in for NATS (embedded), the secret key (generated under the var
// dir) and SMTP (the mail catcher), never for the database.
func LoadComponent(comp Component, args []string, out io.Writer) (Config, error) {
	c, err := Load(comp.Name, args, out)
	if err != nil {
		return c, err
	}
	return c, c.Check(comp)
}

// Check tells what comp is missing in this configuration.
func (c Config) Check(comp Component) error {
	var missing []string
	for _, env := range comp.Needs {
		switch {
		case env == EnvNATSURL && c.NATSURL == "" && !c.Dev():
			missing = append(missing, env)
		case env == EnvSecretKey && c.SecretKey == "" && !c.Dev():
			missing = append(missing, env+" (or "+env+"_FILE)")
		case env == EnvDatabaseURL && c.DatabaseURL == "":
			missing = append(missing, env)
		case env == EnvSMTPAddr && c.SMTPAddr == "" && !c.Dev():
			missing = append(missing, env)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	mode := "production mode (AUTH_MODE unset or production)"
	if c.Dev() {
		mode = "dev mode"
	}
	return fmt.Errorf("%s needs %s, not set. To try the whole service on this machine run `make run` "+
		"(authctl dev), or set AUTH_MODE=dev to run the %s alone in dev mode (embedded nats-server, generated key, mail catcher)",
		mode, strings.Join(missing, ", "), comp.Name)
}

// LoadDev loads the configuration of `authctl dev`, which is dev mode by
// definition: it runs its own nats-server, so AUTH_NATS_URL must be unset,
// and AUTH_MODE, if set, must say dev.
func LoadDev(name string, out io.Writer) (Config, error) {
	c, err := Load(name, nil, out)
	if err != nil {
		return c, err
	}
	if m := os.Getenv("AUTH_MODE"); m != "" && m != ModeDev {
		return c, fmt.Errorf("%s runs dev mode, but AUTH_MODE is %q: unset it", name, m)
	}
	if c.NATSURL != "" {
		return c, fmt.Errorf("%s starts its own nats-server: unset AUTH_NATS_URL (it is %s)", name, c.NATSURL)
	}
	c.Mode = ModeDev
	return c, nil
}

// Dev tells whether this is dev mode, asked for with AUTH_MODE=dev or
// `authctl dev`; never because a variable is missing.
func (c Config) Dev() bool { return c.Mode == ModeDev }

// Keys returns the secret keys: from AUTH_SECRET_KEY, or in dev mode from
// <var>/secret.key, created at the first start. Production without a key
// refuses to start: a random key would make every sealed value unreadable
// after a restart.
func (c Config) Keys() (*secrets.Keys, error) {
	raw := c.SecretKey
	if raw == "" {
		if !c.Dev() {
			return nil, errors.New("AUTH_SECRET_KEY (or AUTH_SECRET_KEY_FILE) is required outside dev mode (base64 of 32 random bytes)")
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
