// Package config is the one place the service's configuration is read. The
// table below (Settings) lists every setting: its environment variable, its
// flag, its default, the components that use it and whether it is a secret.
// Load reads it for a component; View is what one component uses, printed
// at start with the secrets masked. Nothing else in the module reads the
// environment: a test over the source checks it.
//
// Each setting comes from its AUTH_* environment variable, overridable by a
// flag of the same name (AUTH_NATS_URL -> -nats-url). Secrets are the
// exception: they come from the environment or a file (AUTH_SECRET_KEY or
// AUTH_SECRET_KEY_FILE), never from a flag, which anyone on the machine can
// read in `ps`.
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
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// The modes (AUTH_MODE).
const (
	ModeProduction = "production"
	ModeDev        = "dev"
)

// The log formats (AUTH_LOG_FORMAT).
const (
	LogText = "text"
	LogJSON = "json"
)

// The variables a component may need (see Component).
const (
	EnvMode        = "AUTH_MODE"
	EnvNATSURL     = "AUTH_NATS_URL"
	EnvPrefix      = "AUTH_SUBJECT_PREFIX"
	EnvSecretKey   = "AUTH_SECRET_KEY"
	EnvDatabaseURL = "AUTH_DATABASE_URL"
	EnvSMTPAddr    = "AUTH_SMTP_ADDR"
	EnvPolicy      = "AUTH_POLICY"
	EnvVarDir      = "AUTH_VAR_DIR"
	EnvLogLevel    = "AUTH_LOG_LEVEL"
	EnvPartitions  = "AUTH_PARTITIONS"
	EnvPlacement   = "AUTH_PARTITION_PLACEMENT"

	EnvNATSUser        = "AUTH_NATS_USER"
	EnvNATSPassword    = "AUTH_NATS_PASSWORD"
	EnvNATSCreds       = "AUTH_NATS_CREDS"
	EnvNATSTLSCA       = "AUTH_NATS_TLS_CA"
	EnvNATSTLSCert     = "AUTH_NATS_TLS_CERT"
	EnvNATSTLSKey      = "AUTH_NATS_TLS_KEY"
	EnvNATSInboxPrefix = "AUTH_NATS_INBOX_PREFIX"
)

// EnvSecretKeyPrevious lists the keys AUTH_SECRET_KEY replaced, still
// accepted for what they hashed and sealed (docs/keys.md).
const EnvSecretKeyPrevious = "AUTH_SECRET_KEY_PREVIOUS"

// EnvOIDCSubjectKey is the key of the OpenID Connect pairwise subjects,
// kept apart from AUTH_SECRET_KEY so that rotating that key does not
// change every subject (docs/oidc-commands.md).
const EnvOIDCSubjectKey = "AUTH_OIDC_SUBJECT_KEY"

// Config is every component's configuration (SPEC section 7).
type Config struct {
	Mode           string // ModeProduction ("" reads as production) or ModeDev
	NATSURL        string // unset in dev mode: an embedded nats-server
	NATSListen     string // the embedded server's address
	NATS           NATSClient
	Prefix         string // subject prefix
	DatabaseURL    string
	SMTPAddr       string // unset in dev: the built-in mail catcher
	SMTPFrom       string
	SMTPTLS        string // "", none, starttls, tls
	SMTPUser       string
	SMTPPassword   string // from AUTH_SMTP_PASSWORD or AUTH_SMTP_PASSWORD_FILE
	SecretKey      string // base64, 32 bytes, from AUTH_SECRET_KEY or AUTH_SECRET_KEY_FILE; dev generates one under VarDir
	SecretKeyPrev  string // the keys AUTH_SECRET_KEY replaced (AUTH_SECRET_KEY_PREVIOUS or _FILE): base64, comma or newline separated, most recent first
	OIDCSubjectKey string // base64, 32 bytes (AUTH_OIDC_SUBJECT_KEY or _FILE): the pairwise subjects' key; "": derived from AUTH_SECRET_KEY
	HTTPAddr       string // the ops page (internal/ops), and dev mode's pages; "" serves none
	WebAddr        string // the web front-end's listen address (cmd/web, and authctl dev)
	PublicURL      string
	PolicyName     string
	DevClock       bool // AUTH_DEV_CLOCK=1: <prefix>.dev.clock.advance moves the clock, in any mode
	VarDir         string
	LogLevel       string
	ProjectorBatch int    // AUTH_PROJECTOR_BATCH: events per projector transaction at most; 0: the projector's default
	StreamReplicas int    // AUTH_STREAM_REPLICAS: replicas of the streams and the KV buckets the commands service creates (1 to 5)
	Partitions     int    // AUTH_PARTITIONS: partitions of the events (contract.Layout), 1 to contract.MaxPartitions
	CommandsCache  int    // AUTH_COMMANDS_CACHE: account states (and shadow states) the commands service keeps in memory; 0: its default
	GOGC           string // the Go runtime's GOGC, as set; "" lets the projector pick its own
	GOMemLimit     string // the Go runtime's GOMEMLIMIT, as set; "" lets the projector pick its own

	LogFormat   string        // AUTH_LOG_FORMAT: text (the default) or json
	ReadyMaxLag time.Duration // AUTH_READY_MAX_LAG: a consumer whose oldest unhandled event is older is not ready
	// AttemptsRetention is AUTH_ATTEMPTS_RETENTION: how long a login
	// attempt stays in the events stream (docs/retention.md); 0 keeps
	// them for good.
	AttemptsRetention time.Duration
	// Placement is AUTH_PARTITION_PLACEMENT: the tag sets of the nodes
	// each partition's stream and buckets go on; empty: the server chooses.
	Placement contract.Placement
	// SourceAllowlist is AUTH_SOURCE_ALLOWLIST: networks the commands
	// service never counts nor throttles by source (issue 20): known
	// proxies and NATs.
	SourceAllowlist []netip.Prefix
	// WebTrustedProxies is AUTH_WEB_TRUSTED_PROXIES: the reverse proxies
	// in front of the web front-end whose X-Forwarded-For it believes
	// (issue 20: the BFF passes the client's address, never its own).
	WebTrustedProxies []netip.Prefix
	// OpenTelemetry's standard variables that switch traces on and name
	// them (internal/tracing; docs/operations.md, Traces).
	OTLPEndpoint       string // OTEL_EXPORTER_OTLP_ENDPOINT: base URL of an OTLP/HTTP receiver
	OTLPTracesEndpoint string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: full URL of its traces path
	OTelServiceName    string // OTEL_SERVICE_NAME: service.name of the spans; "": authsvc-<component>

	Policy domain.Policy

	// OpenID Connect provider of the web front-end (internal/oidc,
	// docs/oidc.md): off while OIDCIssuer is "" (dev: on, at the web
	// front-end's URL + /oidc).
	OIDCIssuer  string // AUTH_OIDC_ISSUER
	OIDCClients string // AUTH_OIDC_CLIENTS: path of the clients' JSON file
	OIDCKeys    string // AUTH_OIDC_KEYS: PEM files, comma separated, the first signs; "": the OIDC_KEYS bucket

	// The raw values of the settings Load parses into the typed fields.
	devClock, projectorBatch, streamReplicas, partitions, placement, sourceAllowlist, webTrustedProxies, readyMaxLag, attemptsRetention, commandsCache string
}

// Setting is one row of the table.
type Setting struct {
	Env     string // the environment variable
	Flag    string // the flag of the components' Load ("" for none: secrets, and what only authctl or the tests read)
	Default string
	Help    string
	Secret  bool     // masked when printed; read from Env or Env_FILE, refused as a flag
	Users   []string // the components that use it (Component.Name)
	// field is where Load puts the raw value; nil for the settings that
	// only authctl's flags or the test helpers read (Lookup).
	field func(*Config) *string
	// show prints the effective value when it is not the raw string.
	show func(Config) string
}

// Component names, in the order of the settings table's "used by" column.
const (
	nameCommands  = "commands"
	nameProjector = "projector"
	nameNotifier  = "notifier"
	nameDev       = "authctl dev"
	nameBench     = "authctl bench"
	nameAuthctl   = "authctl"
	nameWeb       = "web"
	nameTests     = "tests"
)

var (
	services = []string{nameCommands, nameProjector, nameNotifier, nameDev}
	everyone = []string{nameCommands, nameProjector, nameNotifier, nameWeb, nameDev, nameBench, nameAuthctl}
	// natsClients connect to a NATS they did not start: authctl dev runs
	// its own server, without users.
	natsClients = []string{nameCommands, nameProjector, nameNotifier, nameWeb, nameAuthctl}
	traced      = []string{nameCommands, nameProjector, nameNotifier, nameWeb, nameDev, nameAuthctl}
)

// settings is the table. Keep it in the order the docs list it.
var settings = []Setting{
	{Env: EnvMode, Flag: "mode", Default: ModeProduction,
		Help:  "production, or dev: embedded nats-server, generated secret key, mail catcher (authctl dev is dev mode)",
		Users: services, field: func(c *Config) *string { return &c.Mode }},
	{Env: EnvNATSURL, Flag: "nats-url", Default: "",
		Help:  "NATS server URL; required in production; unset in dev mode: an embedded nats-server (authctl: nats://127.0.0.1:4222, or the running dev mode's)",
		Users: []string{nameCommands, nameProjector, nameNotifier, nameWeb, nameAuthctl}, field: func(c *Config) *string { return &c.NATSURL }},
	{Env: "AUTH_NATS_LISTEN", Flag: "nats-listen", Default: "127.0.0.1:4222",
		Help:  "address of the embedded nats-server of dev mode (a free port if taken)",
		Users: services, field: func(c *Config) *string { return &c.NATSListen }},
	{Env: EnvNATSUser, Flag: "nats-user", Default: "",
		Help:  "NATS user of this component (deploy/nats/users.conf: commands, projector, notifier, frontend, backoffice, admin); its password comes from AUTH_NATS_PASSWORD or AUTH_NATS_PASSWORD_FILE",
		Users: natsClients, field: func(c *Config) *string { return &c.NATS.User }},
	{Env: EnvNATSPassword, Secret: true,
		Help:  "password of AUTH_NATS_USER, or AUTH_NATS_PASSWORD_FILE: a file holding it",
		Users: natsClients, field: func(c *Config) *string { return &c.NATS.Password }},
	{Env: EnvNATSCreds, Flag: "nats-creds", Default: "",
		Help:  "path of a NATS .creds file (user JWT and nkey seed) for a server run with an operator and accounts; instead of AUTH_NATS_USER",
		Users: natsClients, field: func(c *Config) *string { return &c.NATS.Creds }},
	{Env: EnvNATSTLSCA, Flag: "nats-tls-ca", Default: "",
		Help:  "PEM file of the CA that signed the NATS servers' certificates: the connection must be TLS, the server's certificate verified against it",
		Users: natsClients, field: func(c *Config) *string { return &c.NATS.TLSCA }},
	{Env: EnvNATSTLSCert, Flag: "nats-tls-cert", Default: "",
		Help:  "PEM certificate of this component for mutual TLS with NATS (with AUTH_NATS_TLS_KEY)",
		Users: natsClients, field: func(c *Config) *string { return &c.NATS.TLSCert }},
	{Env: EnvNATSTLSKey, Flag: "nats-tls-key", Default: "",
		Help:  "PEM private key of AUTH_NATS_TLS_CERT",
		Users: natsClients, field: func(c *Config) *string { return &c.NATS.TLSKey }},
	{Env: EnvNATSInboxPrefix, Flag: "nats-inbox-prefix", Default: "",
		Help:  "subject prefix of this connection's reply inboxes, _INBOX or under _INBOX.; default _INBOX.<AUTH_NATS_USER> (_INBOX without a user), so that a user may read only its own replies",
		Users: natsClients, field: func(c *Config) *string { return &c.NATS.InboxPrefix },
		show: func(c Config) string { return c.NATS.Inbox() }},
	{Env: EnvPrefix, Flag: "subject-prefix", Default: "auth",
		Help:  "prefix of every subject",
		Users: everyone, field: func(c *Config) *string { return &c.Prefix }},
	{Env: EnvDatabaseURL, Flag: "database-url", Default: "",
		Help:  "Postgres URL of the read models and the notifier's records (dev: found or started by devpg)",
		Users: []string{nameProjector, nameNotifier, nameDev, nameBench, nameAuthctl}, field: func(c *Config) *string { return &c.DatabaseURL }},
	{Env: EnvSMTPAddr, Flag: "smtp-addr", Default: "",
		Help:  "SMTP server host:port; unset in dev mode: the built-in mail catcher",
		Users: []string{nameNotifier, nameDev}, field: func(c *Config) *string { return &c.SMTPAddr }},
	{Env: "AUTH_SMTP_FROM", Flag: "smtp-from", Default: "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>",
		Help:  "sender of the emails",
		Users: []string{nameNotifier, nameDev, nameBench}, field: func(c *Config) *string { return &c.SMTPFrom }},
	{Env: "AUTH_SMTP_TLS", Flag: "smtp-tls", Default: "",
		Help:  "none, starttls or tls; default: STARTTLS when the server offers it",
		Users: []string{nameNotifier, nameDev}, field: func(c *Config) *string { return &c.SMTPTLS }},
	{Env: "AUTH_SMTP_USER", Flag: "smtp-user", Default: "",
		Help:  "SMTP user (optional; the password comes from AUTH_SMTP_PASSWORD or AUTH_SMTP_PASSWORD_FILE)",
		Users: []string{nameNotifier, nameDev}, field: func(c *Config) *string { return &c.SMTPUser }},
	{Env: "AUTH_SMTP_PASSWORD", Secret: true,
		Help:  "SMTP password, or AUTH_SMTP_PASSWORD_FILE: a file holding it",
		Users: []string{nameNotifier, nameDev}, field: func(c *Config) *string { return &c.SMTPPassword }},
	{Env: EnvSecretKey, Secret: true,
		Help:  "base64 of 32 random bytes, or AUTH_SECRET_KEY_FILE: a file holding it; required in production; dev: <var dir>/secret.key",
		Users: []string{nameCommands, nameNotifier, nameDev, nameAuthctl}, field: func(c *Config) *string { return &c.SecretKey }},
	{Env: EnvSecretKeyPrevious, Secret: true,
		Help:  "the keys AUTH_SECRET_KEY replaced, most recent first, comma or newline separated (or AUTH_SECRET_KEY_PREVIOUS_FILE): they still verify and open what they made (docs/keys.md)",
		Users: []string{nameCommands, nameNotifier, nameDev, nameAuthctl}, field: func(c *Config) *string { return &c.SecretKeyPrev }},
	{Env: EnvOIDCSubjectKey, Secret: true,
		Help:  "base64 of 32 random bytes (or AUTH_OIDC_SUBJECT_KEY_FILE): the key of the OpenID Connect pairwise subjects, never rotated (rotating it changes every sub); default: derived from AUTH_SECRET_KEY, whose rotation then changes every sub (docs/oidc-commands.md)",
		Users: []string{nameCommands, nameDev}, field: func(c *Config) *string { return &c.OIDCSubjectKey }},
	{Env: "AUTH_HTTP_ADDR", Flag: "http-addr", Default: "127.0.0.1:8025",
		Help:  "address of the ops page: /healthz, /readyz, /metrics (and the dev mails, /mails/); empty: none; in production set it per component, e.g. :9090",
		Users: []string{nameCommands, nameProjector, nameNotifier, nameWeb, nameDev}, field: func(c *Config) *string { return &c.HTTPAddr }},
	{Env: "AUTH_WEB_ADDR", Flag: "web-addr", Default: "127.0.0.1:8080",
		Help:  "address of the web front-end (dev: the next free port when taken)",
		Users: []string{nameWeb, nameDev}, field: func(c *Config) *string { return &c.WebAddr }},
	{Env: "AUTH_PUBLIC_URL", Flag: "public-url", Default: "http://127.0.0.1:8080",
		Help:  "base of the links put in emails: the web front-end's URL (dev: its actual URL unless set)",
		Users: []string{nameNotifier, nameDev, nameBench}, field: func(c *Config) *string { return &c.PublicURL }},
	{Env: "AUTH_OIDC_ISSUER", Flag: "oidc-issuer", Default: "",
		Help:  "OpenID Connect provider: its issuer URL, https with a path it is served under (e.g. https://moncompte.example.fr/oidc); empty: no provider (dev: the web front-end's URL + /oidc) (docs/oidc.md)",
		Users: []string{nameWeb, nameDev}, field: func(c *Config) *string { return &c.OIDCIssuer }},
	{Env: "AUTH_OIDC_CLIENTS", Flag: "oidc-clients", Default: "",
		Help:  "OpenID Connect provider: path of the JSON file of the registered clients (docs/oidc.md, Clients); dev adds the example client",
		Users: []string{nameWeb, nameDev}, field: func(c *Config) *string { return &c.OIDCClients }},
	{Env: "AUTH_OIDC_KEYS", Flag: "oidc-keys", Default: "",
		Help:  "OpenID Connect provider: PEM files of the signing keys (ES256 P-256 or RS256), comma separated: the first signs, the others stay in the JWKS; empty: the keys of the NATS bucket OIDC_KEYS (dev: generated there once) (docs/oidc.md, Keys)",
		Users: []string{nameWeb, nameDev}, field: func(c *Config) *string { return &c.OIDCKeys }},
	{Env: EnvPolicy, Flag: "policy", Default: "seed",
		Help:  "rules profile: seed or strict",
		Users: []string{nameCommands, nameDev, nameBench}, field: func(c *Config) *string { return &c.PolicyName }},
	{Env: "AUTH_COMMANDS_CACHE", Flag: "commands-cache", Default: "",
		Help:  "account states the commands service keeps in memory, and as many states of NIRs without an account (default 100000: about 1 KB each, docs/commands.md)",
		Users: []string{nameCommands, nameDev}, field: func(c *Config) *string { return &c.commandsCache },
		show: func(c Config) string {
			if c.CommandsCache == 0 {
				return ""
			}
			return strconv.Itoa(c.CommandsCache)
		}},
	{Env: "AUTH_DEV_CLOCK", Flag: "dev-clock", Default: "0",
		Help:  "1: serve or follow <prefix>.dev.clock.advance, in any mode; for dev and test deployments only (authctl dev turns it on)",
		Users: services, field: func(c *Config) *string { return &c.devClock },
		show: func(c Config) string {
			if c.DevClock {
				return "1"
			}
			return "0"
		}},
	{Env: EnvVarDir, Flag: "var-dir", Default: "./var",
		Help:  "where dev mode keeps its data (NATS store, secret key, Postgres, dev.json)",
		Users: everyone, field: func(c *Config) *string { return &c.VarDir }},
	{Env: EnvLogLevel, Flag: "log-level", Default: "info",
		Help:  "debug, info, warn or error",
		Users: []string{nameCommands, nameProjector, nameNotifier, nameWeb, nameDev}, field: func(c *Config) *string { return &c.LogLevel }},
	{Env: "AUTH_LOG_FORMAT", Flag: "log-format", Default: LogText,
		Help:  "text (key=value lines) or json (one JSON object per line, for a log collector)",
		Users: []string{nameCommands, nameProjector, nameNotifier, nameWeb, nameDev}, field: func(c *Config) *string { return &c.LogFormat }},
	{Env: "AUTH_READY_MAX_LAG", Flag: "ready-max-lag", Default: "30s",
		Help:  "readiness bound of the projector and the notifier: not ready while their oldest event not yet handled is older (a Go duration, e.g. 30s, 2m)",
		Users: []string{nameProjector, nameNotifier, nameDev}, field: func(c *Config) *string { return &c.readyMaxLag },
		show: func(c Config) string { return c.ReadyMaxLag.String() }},
	{Env: "AUTH_PROJECTOR_BATCH", Flag: "projector-batch", Default: "",
		Help:  "events per projector transaction at most (default 100000; a batch is also cut at 48 MiB, docs/projector.md)",
		Users: []string{nameProjector, nameDev, nameBench}, field: func(c *Config) *string { return &c.projectorBatch },
		show: func(c Config) string {
			if c.ProjectorBatch == 0 {
				return ""
			}
			return strconv.Itoa(c.ProjectorBatch)
		}},
	{Env: "AUTH_STREAM_REPLICAS", Flag: "stream-replicas", Default: "1",
		Help:  "replicas of the streams (events, dead letters) and the KV buckets the commands service creates (and authctl partitions migrate), and of the dev clock's bucket, 1 to 5; production on the 3-node cluster: 3 (docs/durability.md)",
		Users: []string{nameCommands, nameProjector, nameNotifier, nameDev, nameAuthctl}, field: func(c *Config) *string { return &c.streamReplicas },
		show: func(c Config) string { return strconv.Itoa(c.StreamReplicas) }},
	{Env: EnvPartitions, Flag: "partitions", Default: "1",
		Help:  "partitions of the accounts' events: 1 is the stream AUTH_EVENTS; N > 1 the streams AUTH_EVENTS_0 to _N-1 and their buckets (at most 64); every component of a deployment sets the same, and changing it is a migration (docs/scale.md)",
		Users: []string{nameCommands, nameProjector, nameNotifier, nameDev, nameAuthctl}, field: func(c *Config) *string { return &c.partitions },
		show: func(c Config) string { return strconv.Itoa(c.Partitions) }},
	{Env: EnvPlacement, Flag: "partition-placement", Default: "",
		Help: "JetStream placement tags of each partition's stream and buckets: tag sets separated by ';', tags of a set by ','; partition p goes on the nodes whose server_tags hold every tag of set p mod the number of sets " +
			"(e.g. group:a;group:b); empty: the server chooses; a changed value moves the existing streams (docs/scale.md, Placement)",
		Users: []string{nameCommands, nameDev, nameAuthctl}, field: func(c *Config) *string { return &c.placement },
		show: func(c Config) string { return c.Placement.String() }},
	{Env: "AUTH_SOURCE_ALLOWLIST", Flag: "source-allowlist", Default: "",
		Help:  "networks never throttled by source against password spraying (known proxies and NATs whose one address stands for many people): CIDRs or addresses separated by ',' (e.g. 192.0.2.0/24,2001:db8::/48); empty: none (docs/operations.md, Password spraying)",
		Users: []string{nameCommands, nameDev}, field: func(c *Config) *string { return &c.sourceAllowlist },
		show: func(c Config) string { return joinPrefixes(c.SourceAllowlist) }},
	{Env: "AUTH_WEB_TRUSTED_PROXIES", Flag: "web-trusted-proxies", Default: "",
		Help:  "the reverse proxies in front of the web front-end, CIDRs or addresses separated by ',': from a request whose TCP peer is one of them, the client's address is the rightmost X-Forwarded-For entry that is not; empty: the TCP peer is the client (docs/web.md, Behind a reverse proxy)",
		Users: []string{nameWeb, nameDev}, field: func(c *Config) *string { return &c.webTrustedProxies },
		show: func(c Config) string { return joinPrefixes(c.WebTrustedProxies) }},
	{Env: "AUTH_ATTEMPTS_RETENTION", Flag: "attempts-retention", Default: "8760h",
		Help:  "how long a login attempt stays in the events stream, a Go duration (default 12 months); at least what the policy looks back at (seed: 4464h, 6 months of 31 days); 0 keeps them for good (docs/retention.md)",
		Users: []string{nameCommands, nameDev}, field: func(c *Config) *string { return &c.attemptsRetention },
		show: func(c Config) string { return c.AttemptsRetention.String() }},
	{Env: "GOGC", Default: "",
		Help:  "the Go runtime's; unset, the projector runs with GOGC=400",
		Users: []string{nameProjector, nameDev, nameBench}, field: func(c *Config) *string { return &c.GOGC }},
	{Env: "GOMEMLIMIT", Default: "",
		Help:  "the Go runtime's soft memory limit; unset, the projector runs with GOMEMLIMIT=320MiB",
		Users: []string{nameProjector, nameDev, nameBench}, field: func(c *Config) *string { return &c.GOMemLimit }},
	{Env: "OTEL_EXPORTER_OTLP_ENDPOINT", Default: "",
		Help:  "OpenTelemetry: base URL of an OTLP/HTTP receiver, spans posted to <url>/v1/traces; unset (and the next unset): no traces exported (docs/operations.md)",
		Users: traced, field: func(c *Config) *string { return &c.OTLPEndpoint }},
	{Env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Default: "",
		Help:  "OpenTelemetry: full URL spans are posted to, over OTEL_EXPORTER_OTLP_ENDPOINT",
		Users: traced, field: func(c *Config) *string { return &c.OTLPTracesEndpoint }},
	{Env: "OTEL_SERVICE_NAME", Default: "",
		Help:  "OpenTelemetry: service.name of the spans; unset: authsvc-<component> (authsvc-commands, authsvc-dev…)",
		Users: traced, field: func(c *Config) *string { return &c.OTelServiceName }},
	{Env: "AUTH_TEST_DATABASE_URL", Default: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Help:  "the Postgres server the tests create their databases on",
		Users: []string{nameTests}},
	{Env: "CI", Default: "",
		Help:  "set (to anything): a test that needs Postgres fails instead of skipping",
		Users: []string{nameTests}},
}

// Settings returns the table: every setting, in the docs' order.
func Settings() []Setting { return slices.Clone(settings) }

func lookupSetting(env string) (Setting, bool) {
	i := slices.IndexFunc(settings, func(s Setting) bool { return s.Env == env })
	if i < 0 {
		return Setting{}, false
	}
	return settings[i], true
}

// Explicit tells whether a setting is given a value in the environment
// (not empty), as opposed to taking its default: authctl dev points the
// mailed links at its web front-end unless AUTH_PUBLIC_URL says otherwise.
// It panics on a name the table does not list.
func Explicit(env string) bool {
	if _, ok := lookupSetting(env); !ok {
		panic("config: " + env + " is not in the settings table")
	}
	return os.Getenv(env) != ""
}

// Lookup is a setting's value as the environment gives it, else its
// default, for the readers that take no Config: authctl's flag defaults and
// the test helpers. It panics on a name the table does not list, so the
// table stays the one list of settings.
func Lookup(env string) string {
	s, ok := lookupSetting(env)
	if !ok {
		panic("config: " + env + " is not in the settings table")
	}
	if s.Secret {
		panic("config: " + env + " is a secret: read it with ReadSecret")
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return s.Default
}

// LookupSet is a setting's value as the environment gives it, "" when it
// is unset (not its default): for authctl's flags whose default is "as
// the server says" when the variable is unset (AUTH_PARTITIONS). It panics
// as Lookup does.
func LookupSet(env string) string {
	if _, ok := lookupSetting(env); !ok {
		panic("config: " + env + " is not in the settings table")
	}
	return os.Getenv(env)
}

// secretFlag is the flag a secret would have had: refused, with a pointer
// to the variable and its file.
func secretFlag(env string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, "AUTH_"), "_", "-"))
}

// Load reads the environment, then the flags in args. It checks what every
// component shares; LoadComponent also checks what one component needs.
func Load(name string, args []string, out io.Writer) (Config, error) {
	var c Config
	for _, a := range args {
		if a == "--" {
			break
		}
		flagName, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		for _, s := range settings {
			if s.Secret && strings.HasPrefix(a, "-") && flagName == secretFlag(s.Env) {
				// Never echo a: it may hold the secret.
				return c, fmt.Errorf("-%s is not accepted: a secret on the command line shows in ps; set %s or %s_FILE", flagName, s.Env, s.Env)
			}
		}
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range settings {
		if s.field == nil || s.Secret {
			continue
		}
		def := s.Default
		if v, ok := os.LookupEnv(s.Env); ok {
			def = v
		}
		if s.Flag == "" {
			*s.field(&c) = def
			continue
		}
		fs.StringVar(s.field(&c), s.Flag, def, s.Help+" ("+s.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	for _, s := range settings {
		if s.Secret {
			if *s.field(&c), err = readSecret(s.Env); err != nil {
				return c, err
			}
		}
	}
	return c, c.parse()
}

// parse checks the values and fills the typed fields.
func (c *Config) parse() error {
	switch c.Mode {
	case ModeProduction, ModeDev:
	default:
		return fmt.Errorf("AUTH_MODE: %q is neither %s nor %s", c.Mode, ModeProduction, ModeDev)
	}
	if strings.Contains(c.DatabaseURL, ":"+Placeholder+"@") || strings.Contains(c.DatabaseURL, "password="+Placeholder) {
		return fmt.Errorf("%s: its password is still %q, the placeholder of .env.example", EnvDatabaseURL, Placeholder)
	}
	switch c.devClock {
	case "", "0":
		c.DevClock = false
	case "1":
		c.DevClock = true
	default:
		return fmt.Errorf("AUTH_DEV_CLOCK: %q is neither 1 (on) nor 0 (off)", c.devClock)
	}
	c.ProjectorBatch = 0
	if c.projectorBatch != "" {
		b, err := strconv.Atoi(c.projectorBatch)
		if err != nil || b <= 0 {
			return fmt.Errorf("AUTH_PROJECTOR_BATCH: %q is not a positive number", c.projectorBatch)
		}
		c.ProjectorBatch = b
	}
	c.CommandsCache = 0
	if c.commandsCache != "" {
		n, err := strconv.Atoi(c.commandsCache)
		if err != nil || n <= 0 {
			return fmt.Errorf("AUTH_COMMANDS_CACHE: %q is not a positive number", c.commandsCache)
		}
		c.CommandsCache = n
	}
	c.StreamReplicas = 1
	if c.streamReplicas != "" {
		n, err := strconv.Atoi(c.streamReplicas)
		if err != nil || n < 1 || n > 5 {
			return fmt.Errorf("AUTH_STREAM_REPLICAS: %q is not a number from 1 to 5", c.streamReplicas)
		}
		c.StreamReplicas = n
	}
	c.Partitions = 1
	if c.partitions != "" {
		n, err := strconv.Atoi(c.partitions)
		if err != nil || n < 1 || n > contract.MaxPartitions {
			return fmt.Errorf("AUTH_PARTITIONS: %q is not a number from 1 to %d", c.partitions, contract.MaxPartitions)
		}
		c.Partitions = n
	}
	pl, err := contract.ParsePlacement(c.placement)
	if err != nil {
		return fmt.Errorf("AUTH_PARTITION_PLACEMENT: %w", err)
	}
	c.Placement = pl
	if c.SourceAllowlist, err = ParseAllowlist(c.sourceAllowlist); err != nil {
		return fmt.Errorf("AUTH_SOURCE_ALLOWLIST: %w", err)
	}
	if c.WebTrustedProxies, err = ParseAllowlist(c.webTrustedProxies); err != nil {
		return fmt.Errorf("AUTH_WEB_TRUSTED_PROXIES: %w", err)
	}
	switch c.LogFormat {
	case "", LogText:
		c.LogFormat = LogText
	case LogJSON:
	default:
		return fmt.Errorf("AUTH_LOG_FORMAT: %q is neither %s nor %s", c.LogFormat, LogText, LogJSON)
	}
	c.ReadyMaxLag = 30 * time.Second
	if c.readyMaxLag != "" {
		d, err := time.ParseDuration(c.readyMaxLag)
		if err != nil || d <= 0 {
			return fmt.Errorf("AUTH_READY_MAX_LAG: %q is not a positive duration (e.g. 30s, 2m)", c.readyMaxLag)
		}
		c.ReadyMaxLag = d
	}
	c.AttemptsRetention = 8760 * time.Hour
	if c.attemptsRetention != "" {
		d, err := time.ParseDuration(c.attemptsRetention)
		if err != nil || d < 0 || (d > 0 && d < time.Second) {
			return fmt.Errorf("AUTH_ATTEMPTS_RETENTION: %q is not a duration of at least 1s (e.g. 8760h), nor 0", c.attemptsRetention)
		}
		c.AttemptsRetention = d
	}
	if err := c.NATS.check(); err != nil {
		return err
	}
	p, ok := domain.PolicyByName(c.PolicyName)
	if !ok {
		return fmt.Errorf("AUTH_POLICY: %q is neither seed nor strict", c.PolicyName)
	}
	c.Policy = p
	if r, m := c.AttemptsRetention, p.AttemptsMemory(); r > 0 && r < m {
		return fmt.Errorf("AUTH_ATTEMPTS_RETENTION: %s is shorter than the %s the %s policy looks back at a login attempt (trusted devices)", r, m, p.Name)
	}
	switch c.SMTPTLS {
	case "", "none", "starttls", "tls":
	default:
		return fmt.Errorf("AUTH_SMTP_TLS: %q is not none, starttls or tls", c.SMTPTLS)
	}
	return nil
}

// ReadSecret is a secret setting of the table, for authctl: as Load reads
// it, from VAR or the file named by VAR_FILE.
func ReadSecret(env string) (string, error) {
	if s, ok := lookupSetting(env); !ok || !s.Secret {
		panic("config: " + env + " is not a secret of the settings table")
	}
	return readSecret(env)
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

// Component names a program and the variables it cannot start without in
// production mode.
type Component struct {
	Name  string
	Needs []string // among EnvNATSURL, EnvSecretKey, EnvDatabaseURL, EnvSMTPAddr
}

// The three binaries, and the programs of authctl that run components. The
// projector holds no secret: it never reads a sealed value nor computes a
// keyed hash, so it is not given the key.
var (
	Commands  = Component{nameCommands, []string{EnvNATSURL, EnvSecretKey}}
	Projector = Component{nameProjector, []string{EnvNATSURL, EnvDatabaseURL}}
	Notifier  = Component{nameNotifier, []string{EnvNATSURL, EnvSecretKey, EnvDatabaseURL, EnvSMTPAddr}}
	Dev       = Component{Name: nameDev}
	Bench     = Component{Name: nameBench}
	Authctl   = Component{Name: nameAuthctl}
	Web       = Component{nameWeb, []string{EnvNATSURL}}
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
// and AUTH_MODE, if set, must say dev. The dev clock is always on.
func LoadDev(name string, out io.Writer) (Config, error) {
	c, err := Load(name, nil, out)
	if err != nil {
		return c, err
	}
	if m := os.Getenv(EnvMode); m != "" && m != ModeDev {
		return c, fmt.Errorf("%s runs dev mode, but AUTH_MODE is %q: unset it", name, m)
	}
	if c.NATSURL != "" {
		return c, fmt.Errorf("%s starts its own nats-server: unset AUTH_NATS_URL (it is %s)", name, Redact(c.NATSURL))
	}
	c.Mode, c.DevClock = ModeDev, true
	return c, nil
}

// Dev tells whether this is dev mode, asked for with AUTH_MODE=dev or
// `authctl dev`; never because a variable is missing.
func (c Config) Dev() bool { return c.Mode == ModeDev }

// Layout is where the events are: the subject prefix and AUTH_PARTITIONS
// (docs/scale.md, "Partitions").
func (c Config) Layout() contract.Layout {
	return contract.Layout{Prefix: c.Prefix, Partitions: c.Partitions}
}

// Item is one setting of a View.
type Item struct {
	Env    string
	Value  string // effective; secrets masked, credentials in URLs masked
	Secret bool
}

// View is the settings one component uses, with their effective values,
// secrets masked: what it prints at start.
type View []Item

// View returns what comp uses of this configuration.
func (c Config) View(comp Component) View {
	var v View
	for _, s := range settings {
		if !slices.Contains(s.Users, comp.Name) || s.field == nil {
			continue
		}
		val := *s.field(&c)
		if s.show != nil {
			val = s.show(c)
		}
		switch {
		case s.Secret && val != "":
			val = "(set, masked)"
		case s.Env == EnvSecretKey && c.Dev():
			val = "(dev: " + filepath.Join(c.VarDir, "secret.key") + ")"
		case s.Secret:
			val = "(unset)"
		case s.Env == EnvDatabaseURL || strings.Contains(val, "://") || strings.HasPrefix(val, "postgres"):
			val = Redact(val)
		}
		v = append(v, Item{Env: s.Env, Value: val, Secret: s.Secret})
	}
	return v
}

// LogValue makes a View one group of a structured log line.
func (v View) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(v))
	for _, it := range v {
		attrs = append(attrs, slog.String(it.Env, it.Value))
	}
	return slog.GroupValue(attrs...)
}

// Log prints what comp uses of this configuration, on one line.
func (c Config) Log(log *slog.Logger, comp Component) {
	log.Info("effective configuration", "config", c.View(comp))
}

// Redact masks the credentials of a URL: the password of its user info
// (nats://u:p@host, postgres://u:p@host) and a password or sslpassword
// parameter (postgres://host/db?password=...&sslmode=verify-full). A
// comma-separated list of URLs (AUTH_NATS_URL naming the nodes of a
// cluster) is masked URL by URL. A Postgres connection string in
// keyword/value form ("host=db password=... sslmode=require") has its
// password and sslpassword values masked. TLS settings (sslmode,
// sslrootcert, the file paths) are kept: they are what an operator checks.
func Redact(raw string) string {
	if raw == "" {
		return ""
	}
	if !strings.Contains(raw, "://") && strings.Contains(raw, "=") {
		return dsnPassword.ReplaceAllString(raw, "${1}xxxxx")
	}
	if strings.Contains(raw, ",") {
		parts := strings.Split(raw, ",")
		for i, p := range parts {
			parts[i] = redactOne(strings.TrimSpace(p))
		}
		return strings.Join(parts, ",")
	}
	return redactOne(raw)
}

func redactOne(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// dsnPassword is a password keyword of a keyword/value connection string
// and its value, bare or single-quoted (with \' and \\ escapes), as libpq
// reads them.
var dsnPassword = regexp.MustCompile(`(?i)(\b[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// Keys returns the keyring: the current key from AUTH_SECRET_KEY, or in dev
// mode from <var>/secret.key, created at the first start; then the
// previous keys of AUTH_SECRET_KEY_PREVIOUS (docs/keys.md). Production
// without a key refuses to start: a random key would make every sealed
// value unreadable after a restart. Errors name the setting at fault and
// the key's position in it, never a key.
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
	previous, err := secrets.ParseKeys(EnvSecretKeyPrevious, c.SecretKeyPrev)
	if err != nil {
		return nil, err
	}
	keys, err := secrets.NewKeys(master, previous...)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", EnvSecretKey, EnvSecretKeyPrevious, err)
	}
	if c.OIDCSubjectKey != "" {
		b, err := secrets.ParseKeys(EnvOIDCSubjectKey, c.OIDCSubjectKey)
		if err != nil {
			return nil, err
		}
		if len(b) != 1 {
			return nil, fmt.Errorf("%s: want one key, got %d", EnvOIDCSubjectKey, len(b))
		}
		keys = keys.WithSubjectKey(b[0])
	}
	return keys, nil
}

// ChildEnv is the environment to give a component that another program
// starts (`authctl dev --cluster` starts each binary as a child process):
// this process's environment without any variable of the settings table,
// nor their _FILE forms, so that a child's configuration is only what its
// parent sets for it, then the parent's settings. Each of set is
// "NAME=value".
func ChildEnv(set ...string) []string {
	own := map[string]bool{}
	for _, s := range settings {
		own[s.Env], own[s.Env+"_FILE"] = true, true
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !own[name] {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// joinPrefixes prints a list of networks as ParseAllowlist reads it.
func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

// ParseAllowlist reads AUTH_SOURCE_ALLOWLIST (and AUTH_WEB_TRUSTED_PROXIES): CIDRs or single addresses
// separated by commas (an address is its one-address prefix; IPv4-mapped
// IPv6 is read as IPv4, as the sources are). Empty is none.
func ParseAllowlist(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an address", f)
			}
			a = a.WithZone("").Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", f)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
