package config

import (
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes

// allEnv is every variable Load reads (the table's, and the secrets'
// files), cleared before each case so the machine's environment cannot leak
// in.
var allEnv = func() []string {
	var out []string
	for _, s := range Settings() {
		out = append(out, s.Env)
		if s.Secret {
			out = append(out, s.Env+"_FILE")
		}
	}
	return out
}()

func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range append(allEnv, "AUTH_NATS_ULR") {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestModeRules(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "smtp.pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-smtp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	prod := map[string]string{"AUTH_NATS_URL": "nats://nats:4222", "AUTH_SECRET_KEY": key}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, c := range []struct {
		name string
		comp Component
		env  map[string]string
		args []string
		err  []string // substrings of the error; none: it loads
		dev  bool
		chk  func(t *testing.T, c Config)
	}{
		{name: "commands_in_production_with_nats_and_key", comp: Commands, env: prod},
		{name: "commands_without_anything_names_both_missing_variables", comp: Commands, env: nil,
			err: []string{"production mode", "AUTH_NATS_URL", "AUTH_SECRET_KEY (or AUTH_SECRET_KEY_FILE)", "make run", "AUTH_MODE=dev"}},
		{name: "a_mistyped_nats_variable_is_not_dev_mode", comp: Commands, env: map[string]string{"AUTH_NATS_ULR": "nats://x", "AUTH_SECRET_KEY": key},
			err: []string{"AUTH_NATS_URL"}},
		{name: "commands_without_the_key", comp: Commands, env: with(prod, "AUTH_SECRET_KEY", ""), err: []string{"AUTH_SECRET_KEY"}},
		{name: "explicit_production_mode", comp: Commands, env: with(prod, "AUTH_MODE", "production")},
		{name: "an_unknown_mode", comp: Commands, env: with(prod, "AUTH_MODE", "staging"), err: []string{"AUTH_MODE", "staging"}},
		{name: "dev_mode_needs_neither_nats_nor_key", comp: Commands, env: map[string]string{"AUTH_MODE": "dev"}, dev: true},
		{name: "dev_mode_by_flag", comp: Commands, args: []string{"-mode", "dev"}, dev: true},
		{name: "projector_needs_nats_and_a_database_not_the_key", comp: Projector, env: nil,
			err: []string{"AUTH_NATS_URL", "AUTH_DATABASE_URL"}},
		{name: "projector_in_production", comp: Projector, env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db"}},
		{name: "projector_in_dev_mode_still_needs_its_database", comp: Projector, env: map[string]string{"AUTH_MODE": "dev"},
			err: []string{"dev mode", "AUTH_DATABASE_URL"}},
		{name: "notifier_names_all_four", comp: Notifier, env: nil,
			err: []string{"AUTH_NATS_URL", "AUTH_SECRET_KEY", "AUTH_DATABASE_URL", "AUTH_SMTP_ADDR"}},
		{name: "notifier_in_dev_mode_with_a_database", comp: Notifier, env: map[string]string{"AUTH_MODE": "dev", "AUTH_DATABASE_URL": "postgres://db"}, dev: true},
		{name: "secret_key_from_a_file", comp: Commands, env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_SECRET_KEY_FILE": keyFile},
			chk: func(t *testing.T, c Config) {
				if c.SecretKey != key {
					t.Errorf("secret key not read from its file")
				}
				if _, err := c.Keys(); err != nil {
					t.Error(err)
				}
			}},
		{name: "secret_key_and_its_file_both_set", comp: Commands, env: with(prod, "AUTH_SECRET_KEY_FILE", keyFile),
			err: []string{"AUTH_SECRET_KEY and AUTH_SECRET_KEY_FILE are both set"}},
		{name: "secret_key_file_missing", comp: Commands, env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_SECRET_KEY_FILE": filepath.Join(dir, "nope")},
			err: []string{"AUTH_SECRET_KEY_FILE"}},
		{name: "secret_key_file_empty", comp: Commands, env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_SECRET_KEY_FILE": emptyFile},
			err: []string{"AUTH_SECRET_KEY_FILE", "empty"}},
		{name: "smtp_password_from_a_file", comp: Commands, env: with(prod, "AUTH_SMTP_PASSWORD_FILE", pwFile),
			chk: func(t *testing.T, c Config) {
				if c.SMTPPassword != "s3cret-smtp" {
					t.Errorf("SMTP password not read from its file")
				}
			}},
		{name: "smtp_password_and_its_file_both_set", comp: Commands, env: with(prod, "AUTH_SMTP_PASSWORD", "x", "AUTH_SMTP_PASSWORD_FILE", pwFile),
			err: []string{"AUTH_SMTP_PASSWORD and AUTH_SMTP_PASSWORD_FILE are both set"}},
		{name: "the_secret_key_flag_is_refused", comp: Commands, env: prod, args: []string{"-secret-key", "leaked-value"},
			err: []string{"-secret-key is not accepted", "AUTH_SECRET_KEY_FILE"}},
		{name: "the_secret_key_flag_with_equals_is_refused", comp: Commands, env: prod, args: []string{"--secret-key=leaked-value"},
			err: []string{"-secret-key is not accepted"}},
		{name: "the_smtp_password_flag_is_refused", comp: Notifier, env: prod, args: []string{"-smtp-password=leaked-value"},
			err: []string{"-smtp-password is not accepted", "AUTH_SMTP_PASSWORD_FILE"}},
		{name: "dev_clock_in_production_is_allowed", comp: Commands, env: with(prod, "AUTH_DEV_CLOCK", "1"),
			chk: func(t *testing.T, c Config) {
				if !c.DevClock || c.Dev() {
					t.Errorf("DevClock=%v Dev=%v", c.DevClock, c.Dev())
				}
			}},
		{name: "dev_clock_must_say_1_or_0", comp: Commands, env: with(prod, "AUTH_DEV_CLOCK", "true"), err: []string{"AUTH_DEV_CLOCK"}},
		{name: "dev_clock_by_flag", comp: Commands, env: prod, args: []string{"-dev-clock", "1"},
			chk: func(t *testing.T, c Config) {
				if !c.DevClock {
					t.Error("-dev-clock 1 did not turn the dev clock on")
				}
			}},
		{name: "stream_replicas_default_to_one", comp: Commands, env: prod,
			chk: func(t *testing.T, c Config) {
				if c.StreamReplicas != 1 {
					t.Errorf("StreamReplicas = %d, want 1", c.StreamReplicas)
				}
			}},
		{name: "stream_replicas_three_on_the_cluster", comp: Commands, env: with(prod, "AUTH_STREAM_REPLICAS", "3"),
			chk: func(t *testing.T, c Config) {
				if c.StreamReplicas != 3 {
					t.Errorf("StreamReplicas = %d, want 3", c.StreamReplicas)
				}
			}},
		{name: "stream_replicas_from_one_to_five", comp: Commands, env: with(prod, "AUTH_STREAM_REPLICAS", "7"),
			err: []string{"AUTH_STREAM_REPLICAS", "1 to 5"}},
		{name: "partition_placement_none_by_default", comp: Commands, env: prod,
			chk: func(t *testing.T, c Config) {
				if c.Placement != nil {
					t.Errorf("Placement = %v, want none", c.Placement)
				}
			}},
		{name: "partition_placement_tag_sets", comp: Commands, env: with(prod, "AUTH_PARTITION_PLACEMENT", "group:a;group:b,ssd"),
			chk: func(t *testing.T, c Config) {
				if got := c.Placement.String(); got != "group:a;group:b,ssd" || len(c.Placement.Tags(3)) != 2 {
					t.Errorf("Placement = %q, want group:a;group:b,ssd", got)
				}
			}},
		{name: "partition_placement_refuses_an_empty_set", comp: Commands, env: with(prod, "AUTH_PARTITION_PLACEMENT", "group:a;;group:b"),
			err: []string{"AUTH_PARTITION_PLACEMENT", "tag set 1"}},
		{name: "attempts_retention_twelve_months_by_default", comp: Commands, env: prod,
			chk: func(t *testing.T, c Config) {
				if c.AttemptsRetention != 8760*time.Hour {
					t.Errorf("AttemptsRetention = %s, want 8760h", c.AttemptsRetention)
				}
			}},
		{name: "attempts_retention_zero_keeps_them", comp: Commands, env: with(prod, "AUTH_ATTEMPTS_RETENTION", "0"),
			chk: func(t *testing.T, c Config) {
				if c.AttemptsRetention != 0 {
					t.Errorf("AttemptsRetention = %s, want 0", c.AttemptsRetention)
				}
			}},
		{name: "attempts_retention_not_shorter_than_the_trusted_devices", comp: Commands, env: with(prod, "AUTH_ATTEMPTS_RETENTION", "2160h"),
			err: []string{"AUTH_ATTEMPTS_RETENTION", "2160h", "4464h"}},
		{name: "attempts_retention_a_duration", comp: Commands, env: with(prod, "AUTH_ATTEMPTS_RETENTION", "1 year"),
			err: []string{"AUTH_ATTEMPTS_RETENTION", "duration"}},
		{name: "projector_batch_read_once_for_every_component", comp: Projector,
			env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db", "AUTH_PROJECTOR_BATCH": "150"},
			chk: func(t *testing.T, c Config) {
				if c.ProjectorBatch != 150 {
					t.Errorf("ProjectorBatch = %d, want 150", c.ProjectorBatch)
				}
			}},
		{name: "projector_batch_unset_is_the_projectors_default", comp: Projector,
			env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db"},
			chk: func(t *testing.T, c Config) {
				if c.ProjectorBatch != 0 || c.GOGC != "" {
					t.Errorf("ProjectorBatch = %d, GOGC = %q; want 0 and unset", c.ProjectorBatch, c.GOGC)
				}
			}},
		{name: "projector_batch_must_be_positive", comp: Projector,
			env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db", "AUTH_PROJECTOR_BATCH": "0"},
			err: []string{"AUTH_PROJECTOR_BATCH", "positive"}},
		{name: "projector_batch_by_flag_over_the_environment", comp: Projector,
			env:  map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db", "AUTH_PROJECTOR_BATCH": "150"},
			args: []string{"-projector-batch=300"},
			chk: func(t *testing.T, c Config) {
				if c.ProjectorBatch != 300 {
					t.Errorf("ProjectorBatch = %d, want the flag's 300", c.ProjectorBatch)
				}
			}},
		{name: "gogc_is_read_for_the_projector", comp: Projector,
			env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db", "GOGC": "off"},
			chk: func(t *testing.T, c Config) {
				if c.GOGC != "off" {
					t.Errorf("GOGC = %q", c.GOGC)
				}
			}},
		{name: "the_sender_has_one_default", comp: Notifier, env: map[string]string{"AUTH_MODE": "dev", "AUTH_DATABASE_URL": "postgres://db"}, dev: true,
			chk: func(t *testing.T, c Config) {
				if c.SMTPFrom != "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>" || c.SMTPFrom != Lookup("AUTH_SMTP_FROM") {
					t.Errorf("SMTPFrom = %q", c.SMTPFrom)
				}
			}},
		{name: "logs_are_text_unless_asked_for_json", comp: Commands, env: prod,
			chk: func(t *testing.T, c Config) {
				if c.LogFormat != LogText {
					t.Errorf("LogFormat = %q, want text", c.LogFormat)
				}
			}},
		{name: "json_logs_by_flag", comp: Commands, env: prod, args: []string{"-log-format=json"},
			chk: func(t *testing.T, c Config) {
				if c.LogFormat != LogJSON {
					t.Errorf("LogFormat = %q, want json", c.LogFormat)
				}
			}},
		{name: "an_unknown_log_format", comp: Commands, env: with(prod, "AUTH_LOG_FORMAT", "logfmt"), err: []string{"AUTH_LOG_FORMAT", "logfmt"}},
		{name: "the_readiness_bound_defaults_to_30s", comp: Projector,
			env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db"},
			chk: func(t *testing.T, c Config) {
				if c.ReadyMaxLag != 30*time.Second {
					t.Errorf("ReadyMaxLag = %s, want 30s", c.ReadyMaxLag)
				}
			}},
		{name: "the_readiness_bound_is_a_duration", comp: Notifier,
			env: with(prod, "AUTH_DATABASE_URL", "postgres://db", "AUTH_SMTP_ADDR", "smtp:25", "AUTH_READY_MAX_LAG", "2m"),
			chk: func(t *testing.T, c Config) {
				if c.ReadyMaxLag != 2*time.Minute {
					t.Errorf("ReadyMaxLag = %s, want 2m", c.ReadyMaxLag)
				}
			}},
		{name: "the_readiness_bound_must_be_positive", comp: Projector,
			env: map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_DATABASE_URL": "postgres://db", "AUTH_READY_MAX_LAG": "30"},
			err: []string{"AUTH_READY_MAX_LAG", "positive duration"}},
		{name: "an_unknown_policy", comp: Commands, env: with(prod, "AUTH_POLICY", "lax"), err: []string{"AUTH_POLICY", "lax"}},
		{name: "an_unknown_smtp_tls", comp: Notifier, env: with(prod, "AUTH_SMTP_TLS", "ssl"), err: []string{"AUTH_SMTP_TLS", "ssl"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadComponent(c.comp, c.args, io.Discard)
			if len(c.err) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Dev() != c.dev {
					t.Errorf("Dev() = %v, want %v", cfg.Dev(), c.dev)
				}
				if c.chk != nil {
					c.chk(t, cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded; want an error with %q", c.err)
			}
			for _, s := range c.err {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			// No secret ever shows in an error.
			for _, s := range []string{key, "leaked-value", "s3cret-smtp"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

// Production never generates a key; dev mode generates one once and keeps it.
func TestKeysByMode(t *testing.T) {
	dir := t.TempDir()
	if _, err := (Config{VarDir: dir}).Keys(); err == nil {
		t.Fatal("production without a key got keys")
	}
	if _, err := os.Stat(filepath.Join(dir, "secret.key")); !os.IsNotExist(err) {
		t.Fatalf("production wrote a key: %v", err)
	}
	dev := Config{Mode: ModeDev, VarDir: dir}
	if _, err := dev.Keys(); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Keys(); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "secret.key")); string(again) != string(first) {
		t.Fatal("dev mode replaced its key")
	}
}

// authctl dev is dev mode whatever AUTH_MODE's default says, but refuses an
// explicit contradiction and an external NATS.
func TestLoadDev(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		err  string
	}{
		{"nothing_set", nil, ""},
		{"auth_mode_dev", map[string]string{"AUTH_MODE": "dev"}, ""},
		{"auth_mode_production", map[string]string{"AUTH_MODE": "production"}, "AUTH_MODE"},
		{"an_external_nats", map[string]string{"AUTH_NATS_URL": "nats://n"}, "AUTH_NATS_URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadDev("authctl dev", io.Discard)
			if c.err == "" {
				if err != nil || !cfg.Dev() {
					t.Fatalf("dev=%v err=%v", cfg.Dev(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err %v, want one naming %s", err, c.err)
			}
		})
	}
}

// The table is well formed: one row per variable and per flag, every user
// a component, secrets without a flag; and each program's view is the rows
// that name it.
func TestSettingsTable(t *testing.T) {
	known := map[string]bool{}
	for _, c := range []Component{Commands, Projector, Notifier, Dev, Bench, Authctl, Web} {
		known[c.Name] = true
	}
	known[nameTests] = true
	envs, flags := map[string]bool{}, map[string]bool{}
	for _, s := range Settings() {
		if envs[s.Env] {
			t.Errorf("%s listed twice", s.Env)
		}
		envs[s.Env] = true
		if s.Flag != "" {
			if flags[s.Flag] {
				t.Errorf("flag -%s listed twice", s.Flag)
			}
			flags[s.Flag] = true
		}
		if s.Secret && s.Flag != "" {
			t.Errorf("%s is a secret with a flag", s.Env)
		}
		if len(s.Users) == 0 || s.Help == "" {
			t.Errorf("%s: no user or no help", s.Env)
		}
		for _, u := range s.Users {
			if !known[u] {
				t.Errorf("%s: unknown user %q", s.Env, u)
			}
		}
	}
	for _, want := range []string{"AUTH_PROJECTOR_BATCH", "AUTH_SMTP_FROM", "AUTH_DEV_CLOCK", "AUTH_SECRET_KEY", "GOGC"} {
		if !envs[want] {
			t.Errorf("the table lacks %s", want)
		}
	}
}

// Each component prints what it uses, secrets and URL credentials masked.
func TestViewMasksSecrets(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "smtp.pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-smtp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AUTH_NATS_URL": "nats://svc:natspw@nats:4222", "AUTH_SECRET_KEY": key, "AUTH_SMTP_PASSWORD_FILE": pwFile,
		"AUTH_DATABASE_URL": "postgres://auth:dbpw@db:5432/auth?sslmode=disable", "AUTH_SMTP_ADDR": "smtp:587",
		"AUTH_PROJECTOR_BATCH": "5000",
	} {
		t.Setenv(k, v)
	}
	cfg, err := LoadComponent(Notifier, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	cfg.Log(slog.New(slog.NewTextHandler(&buf, nil)), Notifier)
	line := buf.String()
	for _, secret := range []string{key, "s3cret-smtp", "natspw", "dbpw"} {
		if strings.Contains(line, secret) {
			t.Errorf("the configuration line shows %q:\n%s", secret, line)
		}
	}
	for _, want := range []string{"config.AUTH_SMTP_ADDR=smtp:587", "config.AUTH_SECRET_KEY=\"(set, masked)\"",
		"config.AUTH_SMTP_PASSWORD=\"(set, masked)\"", "postgres://auth:xxxxx@db:5432/auth"} {
		if !strings.Contains(line, want) {
			t.Errorf("the configuration line lacks %s:\n%s", want, line)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("not one line:\n%s", line)
	}
	// The notifier does not batch projections; the projector holds no key.
	if strings.Contains(line, "AUTH_PROJECTOR_BATCH") {
		t.Errorf("the notifier's view shows the projector's batch:\n%s", line)
	}
	for _, it := range cfg.View(Projector) {
		if it.Env == EnvSecretKey {
			t.Error("the projector's view shows the secret key")
		}
	}
	if got := Redact("nats://u:secret1@a:4222,nats://u:secret2@b:4222, nats://c:4222"); strings.Contains(got, "secret") || strings.Count(got, "nats://") != 3 {
		t.Errorf("Redact left a password in a list of URLs: %s", got)
	}
	if got := Redact("postgres://h/db?password=pw&sslmode=disable"); strings.Contains(got, "pw&") || strings.Contains(got, "=pw") {
		t.Errorf("Redact left a password parameter: %s", got)
	}
}

// Only this package reads the environment: every other setting reader goes
// through the table (Load, Lookup, ReadSecret). Tests may set variables.
func TestNoEnvironmentReadOutsideConfig(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "var" || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			filepath.ToSlash(filepath.Dir(path)) == "../../internal/config" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, call := range []string{"os.Getenv(", "os.LookupEnv("} {
			if strings.Contains(string(b), call) {
				t.Errorf("%s calls %s: read the setting through internal/config", path, call)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// AUTH_SECRET_KEY_PREVIOUS makes a keyring (docs/keys.md): read from the
// variable or its file, comma or newline separated; a bad value stops the
// start with an error naming the setting and the key's place, never the
// key; the start line masks it.
func TestPreviousKeys(t *testing.T) {
	const (
		keyB = "YW5vdGhlciBrZXkgb2YgdGhpcnR5LXR3byBieXRlcyE=" // "another key of thirty-two bytes!"
		keyC = "YSB0aGlyZCBrZXksIDMyIGJ5dGVzIGxvbmcuLi4uLi4=" // "a third key, 32 bytes long......"
	)
	dir := t.TempDir()
	prevFile := filepath.Join(dir, "previous")
	if err := os.WriteFile(prevFile, []byte(keyB+"\n"+keyC+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ids := func(t *testing.T, env map[string]string) ([]string, error) {
		t.Helper()
		clearEnv(t)
		for k, v := range env {
			t.Setenv(k, v)
		}
		cfg, err := LoadComponent(Commands, nil, io.Discard)
		if err != nil {
			return nil, err
		}
		var buf strings.Builder
		cfg.Log(slog.New(slog.NewTextHandler(&buf, nil)), Commands)
		masked := `config.AUTH_SECRET_KEY_PREVIOUS="(set, masked)"`
		if env["AUTH_SECRET_KEY_PREVIOUS"]+env["AUTH_SECRET_KEY_PREVIOUS_FILE"] == "" {
			masked = "config.AUTH_SECRET_KEY_PREVIOUS=(unset)"
		}
		if strings.Contains(buf.String(), keyB) || !strings.Contains(buf.String(), masked) {
			t.Errorf("start line does not mask the previous keys:\n%s", buf.String())
		}
		k, err := cfg.Keys()
		if err != nil {
			return nil, err
		}
		return k.IDs(), nil
	}
	idOf := func(b64 string) string {
		k, err := (Config{SecretKey: b64}).Keys()
		if err != nil {
			t.Fatal(err)
		}
		return k.ID()
	}
	base := map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_SECRET_KEY": key}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"AUTH_NATS_URL": "nats://n", "AUTH_SECRET_KEY": key}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	if got, err := ids(t, base); err != nil || len(got) != 1 {
		t.Fatalf("no previous key: %v %v", got, err)
	}
	want := []string{idOf(key), idOf(keyB), idOf(keyC)}
	for name, env := range map[string]map[string]string{
		"comma_separated": with("AUTH_SECRET_KEY_PREVIOUS", keyB+", "+keyC),
		"from_a_file":     with("AUTH_SECRET_KEY_PREVIOUS_FILE", prevFile),
	} {
		if got, err := ids(t, env); err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: ids %v, %v; want %v", name, got, err, want)
		}
	}
	for name, r := range map[string]struct {
		env  map[string]string
		want string
	}{
		"not_base64":        {with("AUTH_SECRET_KEY_PREVIOUS", keyB+",oops-"+keyC), "AUTH_SECRET_KEY_PREVIOUS: key 2: not base64"},
		"short":             {with("AUTH_SECRET_KEY_PREVIOUS", "c2hvcnQ="), "AUTH_SECRET_KEY_PREVIOUS: key 1: want 32 bytes once decoded, got 5"},
		"the_current_again": {with("AUTH_SECRET_KEY_PREVIOUS", keyB+","+key), "AUTH_SECRET_KEY, AUTH_SECRET_KEY_PREVIOUS: previous key 2 is the current key again"},
		"variable_and_file": {with("AUTH_SECRET_KEY_PREVIOUS", keyB, "AUTH_SECRET_KEY_PREVIOUS_FILE", prevFile), "AUTH_SECRET_KEY_PREVIOUS and AUTH_SECRET_KEY_PREVIOUS_FILE are both set"},
		"file_missing":      {with("AUTH_SECRET_KEY_PREVIOUS_FILE", filepath.Join(dir, "nope")), "AUTH_SECRET_KEY_PREVIOUS_FILE"},
	} {
		_, err := ids(t, r.env)
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: err %v; want %q", name, err, r.want)
			continue
		}
		for _, k := range []string{key, keyB, keyC} {
			if strings.Contains(err.Error(), k) || strings.Contains(err.Error(), k[:20]) {
				t.Errorf("%s: the error shows a key: %v", name, err)
			}
		}
	}
	// Dev mode: the generated key is current, the previous keys follow.
	dev, err := (Config{Mode: ModeDev, VarDir: t.TempDir(), SecretKeyPrev: keyB}).Keys()
	if err != nil || len(dev.IDs()) != 2 || dev.IDs()[1] != idOf(keyB) {
		t.Fatalf("dev mode with a previous key: %v %v", dev, err)
	}
}

// A child component gets only what its parent sets of the settings: none of
// the parent's own AUTH_* variables (nor their _FILE forms) leak to it,
// the rest of the environment does.
func TestChildEnvKeepsNoSettingOfTheParent(t *testing.T) {
	t.Setenv("AUTH_NATS_URL", "nats://parent:4222")
	t.Setenv("AUTH_SECRET_KEY_FILE", "/parent/secret.key")
	t.Setenv("GOGC", "50")
	t.Setenv("AUTHSVC_CHILD_ENV_TEST", "kept")
	env := ChildEnv("AUTH_MODE=production", "AUTH_NATS_URL=nats://child:4421")
	joined := "\n" + strings.Join(env, "\n") + "\n"
	for _, gone := range []string{"nats://parent:4222", "/parent/secret.key", "\nGOGC=50\n"} {
		if strings.Contains(joined, gone) {
			t.Errorf("the child inherits %q", gone)
		}
	}
	for _, kept := range []string{"\nAUTHSVC_CHILD_ENV_TEST=kept\n", "\nAUTH_MODE=production\n", "\nAUTH_NATS_URL=nats://child:4421\n"} {
		if !strings.Contains(joined, kept) {
			t.Errorf("the child lacks %q", strings.TrimSpace(kept))
		}
	}
}

// AUTH_OIDC_SUBJECT_KEY pins the pairwise subjects: the same whatever
// AUTH_SECRET_KEY, unlike the derived default; a bad value names the
// setting, never the key.
func TestOIDCSubjectKey(t *testing.T) {
	const (
		keyB = "YW5vdGhlciBrZXkgb2YgdGhpcnR5LXR3byBieXRlcyE=" // "another key of thirty-two bytes!"
		keyC = "YSB0aGlyZCBrZXksIDMyIGJ5dGVzIGxvbmcuLi4uLi4=" // "a third key, 32 bytes long......"
	)
	sub := func(c Config) string {
		t.Helper()
		k, err := c.Keys()
		if err != nil {
			t.Fatal(err)
		}
		return k.PairwiseSubject("fc", "acc")
	}
	if sub(Config{SecretKey: key}) == sub(Config{SecretKey: keyB}) {
		t.Fatal("the derived subject key does not follow AUTH_SECRET_KEY")
	}
	pinned := sub(Config{SecretKey: key, OIDCSubjectKey: keyC})
	if pinned != sub(Config{SecretKey: keyB, SecretKeyPrev: key, OIDCSubjectKey: keyC}) || pinned == sub(Config{SecretKey: key}) {
		t.Fatal("AUTH_OIDC_SUBJECT_KEY does not pin the subjects across a rotation")
	}
	for _, bad := range []string{"not base64!", "c2hvcnQ=", keyB + "," + keyC} {
		_, err := (Config{SecretKey: key, OIDCSubjectKey: bad}).Keys()
		if err == nil || !strings.Contains(err.Error(), "AUTH_OIDC_SUBJECT_KEY") || strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
