package deploycheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/natsusers"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// components are the binaries a service may run, with the configuration
// each loads. authctl runs in none: it is every component's health check.
var components = map[string]config.Component{
	"commands": config.Commands, "projector": config.Projector, "notifier": config.Notifier, "web": config.Web,
}

// thirdParty are the images run as they are published.
var thirdParty = map[string]string{
	"nats":            "the nodes of the NATS cluster",
	"postgres":        "the read models and the notifier's record",
	"axllent/mailpit": "the mail catcher, in place of an SMTP server",
}

// placeholder is the only value .env.example gives a password.
const placeholder = "change-me"

// The data directory of the postgres image (up to 17; 18 moved it).
const postgresData = "/var/lib/postgresql/data"

func envExample(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.Read(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatalf(".env.example: %v", err)
	}
	return env
}

// distinctEnv is .env.example with a distinct value in place of each
// placeholder, so that a password wired to the wrong user shows.
func distinctEnv(t *testing.T) map[string]string {
	t.Helper()
	env := envExample(t)
	for k, v := range env {
		if v == placeholder {
			env[k] = "distinct" + strings.ReplaceAll(strings.ToLower(k), "_", "")
		}
	}
	return env
}

// loadProject loads docker-compose.yml as docker compose does, with env as
// the interpolation environment (what .env gives it): schema validation,
// interpolation, the references between services, volumes and secrets.
func loadProject(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) { o.ResolvePaths = true })
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// rawModel is the compose file as written: anchors and merges resolved,
// nothing interpolated.
func rawModel(t *testing.T) map[string]any {
	t.Helper()
	abs, _ := filepath.Abs(root)
	m, err := loader.LoadModelWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
		Environment: map[string]string{},
	}, func(o *loader.Options) {
		o.SkipInterpolation, o.SkipNormalization, o.SkipResolveEnvironment, o.SkipConsistencyCheck = true, true, true, true
		o.SetProjectName("check", true)
	})
	if err != nil {
		t.Fatalf("docker-compose.yml, not interpolated: %v", err)
	}
	return m
}

// rawEnvironments is each service's environment as written: service ->
// variable -> value, before interpolation.
func rawEnvironments(t *testing.T) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	services, _ := rawModel(t)["services"].(map[string]any)
	for name, s := range services {
		out[name] = map[string]string{}
		sm, _ := s.(map[string]any)
		switch env := sm["environment"].(type) {
		case map[string]any:
			for k, v := range env {
				out[name][k], _ = v.(string)
			}
		case []any:
			for _, kv := range env {
				k, v, _ := strings.Cut(kv.(string), "=")
				out[name][k] = v
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return out
}

func splitImage(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// ours tells whether the service runs our image (built from the
// Dockerfile), and which binary.
func ours(s types.ServiceConfig) (binary string, ok bool) {
	if s.Build == nil {
		return "", false
	}
	if len(s.Command) == 0 {
		return "", true
	}
	return path.Base(s.Command[0]), true
}

func natsNodes(p *types.Project) []types.ServiceConfig {
	var nodes []types.ServiceConfig
	for _, s := range p.Services {
		if repo, _ := splitImage(s.Image); repo == "nats" {
			nodes = append(nodes, s)
		}
	}
	slices.SortFunc(nodes, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return nodes
}

func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// Every service runs one of our binaries from the one image, or a pinned
// third-party image; every program of cmd/ but authctl runs; the commands
// service and the projector run twice.
func TestServicesRunOurBinariesOrKnownImages(t *testing.T) {
	p := loadProject(t, envExample(t))
	binDir := imageBinDir(t)
	ran := map[string]int{}
	images := map[string]bool{}
	for _, s := range p.Services {
		binary, mine := ours(s)
		if !mine {
			repo, tag := splitImage(s.Image)
			if _, ok := thirdParty[repo]; !ok {
				t.Errorf("%s: image %q is neither built from the Dockerfile nor one of %v", s.Name, s.Image, slices.Sorted(maps.Keys(thirdParty)))
			}
			if tag == "" || tag == "latest" || !strings.ContainsAny(tag, "0123456789") {
				t.Errorf("%s: image %q has no pinned version", s.Name, s.Image)
			}
			continue
		}
		images[s.Image] = true
		if abs, _ := filepath.Abs(root); s.Build.Context != abs || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s: built from %s/%s, not the repository's Dockerfile", s.Name, s.Build.Context, s.Build.Dockerfile)
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("%s: an entrypoint %v: the image has none, the command names the binary", s.Name, s.Entrypoint)
		}
		if _, ok := components[binary]; !ok || len(s.Command) == 0 || s.Command[0] != binDir+"/"+binary {
			t.Errorf("%s: command %v does not run a component's binary in %s (%v)", s.Name, s.Command, binDir, slices.Sorted(maps.Keys(components)))
			continue
		}
		ran[binary] += s.GetScale()
	}
	if len(images) != 1 {
		t.Errorf("our services use %d image names, want one: %v", len(images), slices.Sorted(maps.Keys(images)))
	}
	for _, b := range binaries(t) {
		if _, ok := components[b]; !ok && b != "authctl" {
			t.Errorf("cmd/%s is neither a component nor authctl: add it to the compose file and to this test", b)
		}
	}
	for b := range components {
		if ran[b] == 0 {
			t.Errorf("no service runs %s", b)
		}
	}
	// Two commands instances share the load (micro queue group); two
	// projectors: a leader and a hot standby.
	for _, b := range []string{"commands", "projector"} {
		if ran[b] < 2 {
			t.Errorf("%s runs %d time(s), want 2", b, ran[b])
		}
	}
	if len(natsNodes(p)) != 3 {
		t.Errorf("%d nats nodes, want 3", len(natsNodes(p)))
	}
}

// clearSettings unsets every setting (and its _FILE) for the test.
func clearSettings(t *testing.T) {
	t.Helper()
	for _, s := range config.Settings() {
		for _, name := range []string{s.Env, s.Env + "_FILE"} {
			if v, ok := os.LookupEnv(name); ok {
				t.Setenv(name, v) // restored at the end
				os.Unsetenv(name)
			}
		}
	}
}

// Each component is given only settings of the table that it reads
// (config.Settings(), its "used by"), secrets through NAME_FILE only where
// the setting is a secret, and with them it starts in production mode:
// config.LoadComponent accepts the environment the compose file gives it.
func TestComponentsGetKnownSettingsAndStartInProduction(t *testing.T) {
	// With .env.example's placeholders replaced, as the operator must: a
	// component refuses a placeholder password (config's
	// TestPlaceholderPasswordsAreRefused).
	four := distinctEnv(t)
	four[config.EnvPartitions] = "4"
	for name, env := range map[string]map[string]string{".env.example": distinctEnv(t), "AUTH_PARTITIONS=4": four} {
		t.Run(name, func(t *testing.T) { componentsStart(t, env) })
	}
}

func componentsStart(t *testing.T, environment map[string]string) {
	p := loadProject(t, environment)
	table := map[string]config.Setting{}
	for _, s := range config.Settings() {
		table[s.Env] = s
	}
	nodes := natsNodes(p)
	for _, s := range p.Services {
		binary, mine := ours(s)
		comp, ok := components[binary]
		if !mine || !ok {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			clearSettings(t)
			for _, name := range slices.Sorted(maps.Keys(s.Environment)) {
				val := env(s, name)
				base, isFile := strings.CutSuffix(name, "_FILE")
				st, known := table[base]
				switch {
				case !known:
					t.Errorf("%s sets %s, which is not a setting (config.Settings())", s.Name, name)
					continue
				case isFile && !st.Secret:
					t.Errorf("%s sets %s, but %s is not a secret (only secrets are read from a file)", s.Name, name, base)
				case !slices.Contains(st.Users, comp.Name):
					t.Errorf("%s sets %s, which %s does not read (used by %v)", s.Name, name, comp.Name, st.Users)
				}
				if isFile {
					// The container's /run/secrets/... is a file here.
					f := filepath.Join(t.TempDir(), "secret")
					if err := os.WriteFile(f, []byte(secrets.NewMasterKey()+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					val = f
				}
				t.Setenv(name, val)
			}
			cfg, err := config.LoadComponent(comp, nil, io.Discard)
			if err != nil {
				t.Fatalf("%s would not start: %v", s.Name, err)
			}
			if cfg.Dev() {
				t.Errorf("%s runs in dev mode", s.Name)
			}
			if slices.Contains(table["AUTH_STREAM_REPLICAS"].Users, comp.Name) && cfg.StreamReplicas != len(nodes) {
				t.Errorf("%s creates the stream and buckets with %d replicas on %d nats nodes", s.Name, cfg.StreamReplicas, len(nodes))
			}
			// Every reader of AUTH_PARTITIONS gets it, and the nats nodes'
			// users name the streams and buckets of that many partitions.
			if slices.Contains(table[config.EnvPartitions].Users, comp.Name) {
				if _, set := s.Environment[config.EnvPartitions]; !set {
					t.Errorf("%s reads %s and is not given it: it would take the default", s.Name, config.EnvPartitions)
				}
				want, err := natsusers.Conf(cfg.Layout())
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range nodes {
					if !bytes.Equal(natsUsersFile(t, n), want) {
						t.Errorf("%s runs with %s=%d, and %s's users are not the generated ones for it", s.Name, config.EnvPartitions, cfg.Partitions, n.Name)
					}
				}
			}
			if cfg.SecretKey != "" {
				if _, err := cfg.Keys(); err != nil {
					t.Errorf("%s: the key: %v", s.Name, err)
				}
			}
		})
	}
}

var (
	// requiredRef is a value that is one required variable: ${NAME:?why}.
	requiredRef = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}$`)
	// urlPassword is the password of a URL's user info.
	urlPassword = regexp.MustCompile(`://[^:/@\s]+:([^@\s]*)@`)
	// secretVar is a variable that holds a secret by its name.
	secretVar = regexp.MustCompile(`PASSWORD|SECRET|TOKEN|KEY`)
)

// No secret is written in the compose file: the secret key comes as a
// compose secret (a file the operator creates under secrets/), every
// password as a required variable of .env, without a default.
func TestComposeFileHoldsNoSecret(t *testing.T) {
	p := loadProject(t, envExample(t))
	raw := rawEnvironments(t)
	for _, s := range p.Services {
		for _, name := range slices.Sorted(maps.Keys(raw[s.Name])) {
			val := raw[s.Name][name]
			base, isFile := strings.CutSuffix(name, "_FILE")
			secretSetting := false
			for _, st := range config.Settings() {
				secretSetting = secretSetting || (st.Secret && st.Env == base)
			}
			switch {
			case name == config.EnvSecretKey:
				t.Errorf("%s: %s in the environment: give it as the compose secret, %s_FILE", s.Name, name, name)
			case isFile && secretSetting:
				secretName, ok := strings.CutPrefix(val, "/run/secrets/")
				if !ok || !slices.ContainsFunc(s.Secrets, func(sc types.ServiceSecretConfig) bool { return sc.Source == secretName }) {
					t.Errorf("%s: %s=%s is not one of the service's compose secrets", s.Name, name, val)
				}
			case secretSetting || strings.Contains(name, "PASSWORD"):
				if !requiredRef.MatchString(val) {
					t.Errorf("%s: %s=%s: want ${VAR:?...}, set in .env", s.Name, name, val)
				}
			}
			if m := urlPassword.FindStringSubmatch(val); m != nil && !requiredRef.MatchString(m[1]) {
				t.Errorf("%s: %s has a password in its URL that is not ${VAR:?...}: %s", s.Name, name, val)
			}
		}
	}
	abs, _ := filepath.Abs(root)
	for name, sec := range p.Secrets {
		rel, err := filepath.Rel(abs, sec.File)
		if sec.File == "" || err != nil || !strings.HasPrefix(rel, "secrets"+string(filepath.Separator)) {
			t.Errorf("secret %s: %q is not a file under secrets/ (which git and docker ignore)", name, sec.File)
		}
	}
}

// .env.example names every variable the compose file needs and holds no
// secret: its passwords are placeholders, and the key is not there at all.
// git ignores the operator's .env and secrets/.
func TestEnvExampleHasEveryVariableAndNoSecret(t *testing.T) {
	example := envExample(t)
	vars := template.ExtractVariables(rawModel(t), nil)
	for name, v := range vars {
		if _, ok := example[name]; !ok && v.DefaultValue == "" {
			t.Errorf("docker-compose.yml uses ${%s} without a default, and .env.example does not set it", name)
		}
	}
	table := map[string]bool{}
	for _, s := range config.Settings() {
		table[s.Env] = true
	}
	for name, val := range example {
		if _, used := vars[name]; !used && !strings.HasPrefix(name, "COMPOSE_") {
			t.Errorf(".env.example sets %s, which docker-compose.yml does not use", name)
		}
		if strings.HasPrefix(name, "AUTH_") && !table[name] {
			t.Errorf(".env.example sets %s, which is not a setting", name)
		}
		if secretVar.MatchString(name) && val != placeholder {
			t.Errorf(".env.example: %s=%q: want the placeholder %q", name, val, placeholder)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/.env", "/secrets/"} {
		if !slices.Contains(strings.Fields(string(b)), want) {
			t.Errorf(".gitignore lacks %s", want)
		}
	}
}

// Every service has a health check that runs without a shell, restarts on
// its own, and keeps its data in a named volume of its own; bind mounts
// are read-only configuration.
func TestServicesAreCheckedRestartedAndKeepTheirData(t *testing.T) {
	p := loadProject(t, envExample(t))
	binDir := imageBinDir(t)
	owner := map[string]string{}
	for _, s := range p.Services {
		hc := s.HealthCheck
		switch {
		case hc == nil || hc.Disable || len(hc.Test) < 2:
			t.Errorf("%s: no health check", s.Name)
		case hc.Test[0] != "CMD":
			t.Errorf("%s: health check %v: want the exec form [CMD, ...], which needs no shell", s.Name, hc.Test)
		case hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil:
			t.Errorf("%s: health check without interval, timeout or retries", s.Name)
		}
		if _, mine := ours(s); mine && hc != nil && len(hc.Test) >= 4 {
			// authctl probe http://127.0.0.1:PORT/readyz, PORT from AUTH_HTTP_ADDR.
			_, port, _ := net.SplitHostPort(env(s, "AUTH_HTTP_ADDR"))
			want := []string{"CMD", binDir + "/authctl", "probe", "http://127.0.0.1:" + port + "/readyz"}
			if port == "" || !slices.Equal(hc.Test, want) {
				t.Errorf("%s: health check %v, want %v (the ops page on AUTH_HTTP_ADDR)", s.Name, hc.Test, want)
			}
		}
		if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
			t.Errorf("%s: restart %q: want unless-stopped or always", s.Name, s.Restart)
		}
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				if _, declared := p.Volumes[v.Source]; v.Source == "" || !declared {
					t.Errorf("%s: volume %q at %s is not a declared named volume", s.Name, v.Source, v.Target)
				}
				if o, taken := owner[v.Source]; taken && o != s.Name {
					t.Errorf("volume %s is shared by %s and %s", v.Source, o, s.Name)
				}
				owner[v.Source] = s.Name
			case types.VolumeTypeBind:
				if !v.ReadOnly {
					t.Errorf("%s: bind mount %s is writable", s.Name, v.Source)
				}
			default:
				t.Errorf("%s: a %s mount at %s", s.Name, v.Type, v.Target)
			}
		}
	}
	// The stores: each nats node's JetStream directory, Postgres's data.
	for _, n := range natsNodes(p) {
		opts := natsOptions(t, n)
		if !inNamedVolume(n, opts.StoreDir) {
			t.Errorf("%s: the JetStream store %s is not in a named volume", n.Name, opts.StoreDir)
		}
	}
	pg, ok := p.Services["postgres"]
	if !ok || !inNamedVolume(pg, postgresData) {
		t.Errorf("postgres: %s is not in a named volume", postgresData)
	}
	for name := range p.Volumes {
		if owner[name] == "" {
			t.Errorf("volume %s is declared and unused", name)
		}
	}
}

func inNamedVolume(s types.ServiceConfig, dir string) bool {
	return dir != "" && slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && (dir == v.Target || strings.HasPrefix(dir, v.Target+"/"))
	})
}

// Every dependency names a service with a health check and waits for it
// to be healthy; each component waits for every server it connects to
// (the three nats nodes before the 3-replica stream is created, Postgres,
// the SMTP server).
func TestDependenciesWaitForHealthyServers(t *testing.T) {
	p := loadProject(t, envExample(t))
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %s, which is not a service", s.Name, dep)
			case target.HealthCheck == nil:
				t.Errorf("%s depends on %s, which has no health check", s.Name, dep)
			case d.Condition != types.ServiceConditionHealthy:
				t.Errorf("%s depends on %s being %s: want service_healthy", s.Name, dep, d.Condition)
			}
		}
		if _, mine := ours(s); !mine {
			continue
		}
		var hosts []string
		for _, u := range strings.Split(env(s, config.EnvNATSURL), ",") {
			if pu, err := url.Parse(u); err == nil && pu.Hostname() != "" {
				hosts = append(hosts, pu.Hostname())
			}
		}
		if pu, err := url.Parse(env(s, config.EnvDatabaseURL)); err == nil && pu.Hostname() != "" {
			hosts = append(hosts, pu.Hostname())
		}
		if h, _, err := net.SplitHostPort(env(s, config.EnvSMTPAddr)); err == nil {
			hosts = append(hosts, h)
		}
		for _, h := range hosts {
			if _, ok := s.DependsOn[h]; !ok {
				t.Errorf("%s connects to %s without waiting for it (depends_on)", s.Name, h)
			}
		}
	}
}

// natsOptions reads the node's configuration with the nats-server's own
// parser, in the node's environment (its name, the users' passwords): a
// variable the configuration needs and the node lacks fails here. The
// files are read as the container sees them: each bind mount under the
// configuration's directory (deploy/nats/nats-server.conf, and the users
// file of AUTH_PARTITIONS as users.conf, which it includes) is copied to
// its place in a directory of the test.
func natsOptions(t *testing.T, node types.ServiceConfig) *natsserver.Options {
	t.Helper()
	confPath := ""
	for i, a := range node.Command {
		if (a == "--config" || a == "-c") && i+1 < len(node.Command) {
			confPath = node.Command[i+1]
		}
	}
	dir := t.TempDir()
	confDir := path.Dir(confPath)
	for _, v := range node.Volumes {
		rel, under := strings.CutPrefix(v.Target, confDir+"/")
		if v.Type != types.VolumeTypeBind || v.Target != confDir && !under {
			continue
		}
		if v.Target == confDir {
			t.Fatalf("%s: %s is mounted whole: mount each file, as the users file depends on AUTH_PARTITIONS", node.Name, v.Source)
		}
		b, err := os.ReadFile(v.Source)
		if err != nil {
			t.Fatalf("%s: %s, mounted at %s: %v", node.Name, v.Source, v.Target, err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host := filepath.Join(dir, path.Base(confPath))
	if _, err := os.Stat(host); confPath == "" || err != nil {
		t.Fatalf("%s: its configuration %q is not mounted from the repository", node.Name, confPath)
	}
	for k, v := range node.Environment {
		if v != nil {
			t.Setenv(k, *v)
		}
	}
	opts, err := natsserver.ProcessConfigFile(host)
	if err != nil {
		t.Fatalf("%s: %s: %v", node.Name, confPath, err)
	}
	return opts
}

// natsUsersFile is what the node mounts as the users file nats-server.conf
// includes (users.conf beside it).
func natsUsersFile(t *testing.T, node types.ServiceConfig) []byte {
	t.Helper()
	for _, v := range node.Volumes {
		if v.Type == types.VolumeTypeBind && path.Base(v.Target) == "users.conf" {
			if v.Bind == nil || v.Bind.CreateHostPath {
				t.Errorf("%s: the users file %s would be made a directory when missing: set bind.create_host_path false", node.Name, v.Source)
			}
			b, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatalf("%s: %v", node.Name, err)
			}
			return b
		}
	}
	t.Fatalf("%s mounts no users.conf", node.Name)
	return nil
}

// The nats nodes are the cluster deploy/nats describes: each is named as
// its service, routes to the others, is probed on its monitoring port; the
// components list every node, and each connects as a user of the server's
// configuration with that user's password.
func TestNATSClusterMatchesTheServerConfiguration(t *testing.T) {
	p := loadProject(t, distinctEnv(t))
	nodes := natsNodes(p)
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	var users map[string]string
	for _, n := range nodes {
		opts := natsOptions(t, n)
		if opts.ServerName != n.Name || n.Hostname != n.Name {
			t.Errorf("%s: server_name %q, hostname %q: want the service's name", n.Name, opts.ServerName, n.Hostname)
		}
		var routes []string
		for _, r := range opts.Routes {
			if r.Port() != strconv.Itoa(opts.Cluster.Port) {
				t.Errorf("%s: route %s is not on the cluster port %d", n.Name, r, opts.Cluster.Port)
			}
			routes = append(routes, r.Hostname())
		}
		slices.Sort(routes)
		if !slices.Equal(routes, names) {
			t.Errorf("%s: routes to %v, the nodes are %v", n.Name, routes, names)
		}
		if want := "http://127.0.0.1:" + strconv.Itoa(opts.HTTPPort) + "/healthz"; n.HealthCheck == nil || !slices.Contains(n.HealthCheck.Test, want) {
			t.Errorf("%s: the health check does not ask %s", n.Name, want)
		}
		users = map[string]string{}
		for _, u := range opts.Users {
			users[u.Username] = u.Password
		}
	}
	wantURL := make([]string, len(names))
	for i, n := range names {
		wantURL[i] = "nats://" + n + ":4222"
	}
	for _, s := range p.Services {
		if _, mine := ours(s); !mine {
			continue
		}
		if got := env(s, config.EnvNATSURL); got != strings.Join(wantURL, ",") {
			t.Errorf("%s: AUTH_NATS_URL=%s, want every node: %s", s.Name, got, strings.Join(wantURL, ","))
		}
		user, pw := env(s, "AUTH_NATS_USER"), env(s, "AUTH_NATS_PASSWORD")
		if user == "" || pw == "" {
			t.Errorf("%s: no AUTH_NATS_USER or AUTH_NATS_PASSWORD", s.Name)
			continue
		}
		// Each user's password is the variable the nats nodes read for it.
		if raw := rawEnvironments(t)[s.Name]["AUTH_NATS_PASSWORD"]; !strings.HasPrefix(raw, "${NATS_PASSWORD_"+strings.ToUpper(user)+":") {
			t.Errorf("%s connects as %q with the password %s, not ${NATS_PASSWORD_%s}", s.Name, user, raw, strings.ToUpper(user))
		}
		if got, ok := users[user]; !ok {
			t.Errorf("%s connects as %q, which deploy/nats does not define", s.Name, user)
		} else if got != pw {
			t.Errorf("%s is given another password than its user %q has on the nats nodes", s.Name, user)
		}
	}
}

// The components reach Postgres as the user, database and password the
// postgres service creates.
func TestDatabaseURLMatchesThePostgresService(t *testing.T) {
	p := loadProject(t, distinctEnv(t))
	pg, ok := p.Services["postgres"]
	if !ok {
		t.Fatal("no postgres service")
	}
	for _, s := range p.Services {
		raw := env(s, config.EnvDatabaseURL)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: AUTH_DATABASE_URL: %v", s.Name, err)
			continue
		}
		pw, _ := u.User.Password()
		if u.User.Username() != env(pg, "POSTGRES_USER") || pw != env(pg, "POSTGRES_PASSWORD") ||
			strings.TrimPrefix(u.Path, "/") != env(pg, "POSTGRES_DB") {
			t.Errorf("%s: AUTH_DATABASE_URL's user, password or database is not the postgres service's", s.Name)
		}
	}
}

// placementFits tells whether every partition of the commands service's
// AUTH_PARTITIONS finds, among the nodes' server_tags, as many nodes as
// AUTH_STREAM_REPLICAS holding every tag of its AUTH_PARTITION_PLACEMENT
// set (a tag "!t" excludes the nodes tagged t), as nats-server's peer
// selection requires (else "no suitable peers" at the first start).
func placementFits(t *testing.T, p *types.Project) error {
	t.Helper()
	cmd, err := p.GetService("commands")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := contract.ParsePlacement(env(cmd, config.EnvPlacement))
	if err != nil {
		return err
	}
	n, err1 := strconv.Atoi(env(cmd, config.EnvPartitions))
	replicas, err2 := strconv.Atoi(env(cmd, "AUTH_STREAM_REPLICAS"))
	if err1 != nil || err2 != nil {
		t.Fatalf("commands: AUTH_PARTITIONS %q, AUTH_STREAM_REPLICAS %q", env(cmd, config.EnvPartitions), env(cmd, "AUTH_STREAM_REPLICAS"))
	}
	var nodeTags [][]string
	for _, node := range natsNodes(p) {
		nodeTags = append(nodeTags, natsOptions(t, node).Tags)
	}
	for part := range n {
		fit := 0
		for _, tags := range nodeTags {
			if slices.IndexFunc(pl.Tags(part), func(want string) bool {
				if ex, ok := strings.CutPrefix(want, "!"); ok {
					return slices.Contains(tags, ex)
				}
				return !slices.Contains(tags, want)
			}) < 0 {
				fit++
			}
		}
		if fit < replicas {
			return fmt.Errorf("partition %d: %d nodes have the tags %v, it needs %d replicas", part, fit, pl.Tags(part), replicas)
		}
	}
	return nil
}

// Each node has a placement tag (NATS_SERVER_TAG), and the commands
// service's placement finds enough nodes for every partition: unset, as
// .env.example has it, and set to the three nodes' group, on one
// partition and on four. A group no node has is caught.
func TestPlacementFindsTheNodes(t *testing.T) {
	for _, node := range natsNodes(loadProject(t, distinctEnv(t))) {
		if tags := natsOptions(t, node).Tags; len(tags) != 1 || !strings.HasPrefix(tags[0], "group:") {
			t.Errorf("%s: server_tags %v, want one group:<name> tag (NATS_SERVER_TAG)", node.Name, tags)
		}
	}
	for _, set := range []map[string]string{
		{},
		{config.EnvPlacement: "group:a"},
		{config.EnvPlacement: "group:a", config.EnvPartitions: "4"},
		{config.EnvPlacement: "group:a;!group:b", config.EnvPartitions: "2"},
	} {
		e := distinctEnv(t)
		maps.Copy(e, set)
		if err := placementFits(t, loadProject(t, e)); err != nil {
			t.Errorf("with %v: %v", set, err)
		}
	}
	e := distinctEnv(t)
	e[config.EnvPlacement], e[config.EnvPartitions] = "group:a;group:b", "2"
	if err := placementFits(t, loadProject(t, e)); err == nil || !strings.Contains(err.Error(), "partition 1") {
		t.Errorf("group:b, which no node has: %v, want partition 1 refused", err)
	}
}
