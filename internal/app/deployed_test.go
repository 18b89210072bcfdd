package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/pgtest"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// A test deployment: the three real binaries, each its own process, against
// one external nats-server, with AUTH_DEV_CLOCK=1. One advance request
// moves every component's clock: a code typed after 15 minutes is
// otp_expired, and the notifier decides "too late to mail" by its own
// (followed) clock.
func TestDeployedComponentsFollowTheDevClock(t *testing.T) {
	dbURL := pgtest.NewDatabase(t) // fails under CI=true when Postgres is missing, never skips there
	bin := buildBinaries(t)
	srv := natsutil.RunTestServer(t)
	mails, err := catcher.Start(catcher.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mails.Close() })
	secretKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	env := []string{
		"AUTH_NATS_URL=" + srv.ClientURL(), "AUTH_SECRET_KEY=" + secretKey, "AUTH_DEV_CLOCK=1",
		"AUTH_DATABASE_URL=" + dbURL, "AUTH_SMTP_ADDR=" + mails.Addr(), "AUTH_SMTP_TLS=none",
		"AUTH_VAR_DIR=" + t.TempDir(), "AUTH_LOG_LEVEL=info",
		// Each its own ops page: in production a taken address is fatal.
		"AUTH_HTTP_ADDR=127.0.0.1:0",
	}
	// The commands service first: it creates the streams, which the
	// notifier waits for (TestNATSUsersPermissions starts it first).
	commands := startProcess(t, filepath.Join(bin, "commands"), env, "commands service started")
	projector := startProcess(t, filepath.Join(bin, "projector"), env, "projector started")
	notifier := startProcess(t, filepath.Join(bin, "notifier"), env, "notifier sending mail")
	procs := []*process{commands, projector, notifier}
	for _, p := range procs {
		if !strings.Contains(p.logs(), DevClockWarning) {
			t.Errorf("%s did not warn that the dev clock is on:\n%s", p.name, p.logs())
		}
	}

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	req := func(subject string, body map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		m, err := nc.Request("auth."+subject, b, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		var rep map[string]any
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatalf("%s: %s", subject, m.Data)
		}
		return rep
	}
	mustOK := func(subject string, body map[string]any) map[string]any {
		t.Helper()
		rep := req(subject, body)
		if rep["ok"] != true {
			t.Fatalf("%s: %v", subject, rep)
		}
		return rep
	}
	register := func(nir, email string) {
		mustOK("cmd.account.register", map[string]any{"nir": nir, "email": email, "password": DemoPassword,
			"email_validated": true, "affiliation": "active", "channel": "backoffice"})
	}

	// Each binary serves its ops page: ready (the dev clock said), and its
	// own metrics.
	for _, c := range []struct {
		p      *process
		metric string
	}{{commands, "auth_hashes_in_flight"}, {projector, "auth_projector_leader 1"}, {notifier, `auth_consumer_lag_events{consumer="notifier"}`}} {
		page := opsPage(t, c.p)
		testwait.Until(t, 30*time.Second, func() error {
			code, body := httpGet(t, page+"/readyz")
			if code != http.StatusOK || body != "ready\ndev clock on (AUTH_DEV_CLOCK=1)\n" {
				return fmt.Errorf("%s /readyz: %d %q", c.p.name, code, body)
			}
			return nil
		})
		if code, body := httpGet(t, page+"/metrics"); code != http.StatusOK || !strings.Contains(body, c.metric) ||
			!strings.Contains(body, `auth_nats_connected{conn="auth-`+c.p.name+`"} 1`) {
			t.Errorf("%s /metrics: %d, without %s or its NATS connection", c.p.name, code, c.metric)
		}
	}

	// A login whose code arrives by mail, then 15 minutes pass in one request.
	register(DemoNIR, DemoEmail)
	login := mustOK("cmd.login.password", map[string]any{"nir": DemoNIR, "password": DemoPassword})
	mustOK("cmd.login.otp.send", map[string]any{"login_id": login["login_id"]})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mail, err := mails.Wait(ctx, func(m catcher.Message) bool { return catcher.To(DemoEmail)(m) && m.Code != "" })
	if err != nil {
		t.Fatalf("no code mailed: %v\n%s", err, notifier.logs())
	}
	adv := mustOK("dev.clock.advance", map[string]any{"seconds": 15 * 60})
	if now, _ := time.Parse(time.RFC3339, adv["now"].(string)); now.Before(time.Now().Add(14 * time.Minute)) {
		t.Fatalf("advance replied %v", adv)
	}
	rep := req("cmd.login.otp.verify", map[string]any{"login_id": login["login_id"], "code": mail.Code})
	if e, _ := rep["error"].(map[string]any); rep["ok"] != false || e["code"] != "otp_expired" {
		t.Fatalf("the right code 15 minutes later: %v, want otp_expired", rep)
	}
	// The followers moved with the same request, through the kept offset.
	for _, p := range []*process{projector, notifier} {
		p.waitLog(t, "offset=15m0s", 1)
	}

	// A restart never takes the clock back, and the notifier decides by its
	// own clock. Stop the notifier; a code issued now waits in the stream;
	// one hour passes; the notifier started again starts at the kept time,
	// for which the code is an hour old: it must not be mailed.
	notifier.stop(t)
	const nir2, email2 = "1 84 12 76 451 089 46", "second@exemple.fr"
	register(nir2, email2)
	login = mustOK("cmd.login.password", map[string]any{"nir": nir2, "password": DemoPassword})
	mustOK("cmd.login.otp.send", map[string]any{"login_id": login["login_id"]})
	mustOK("dev.clock.advance", map[string]any{"seconds": 3600})
	projector.waitLog(t, "offset=1h15m0s", 1)
	notifier = startProcess(t, filepath.Join(bin, "notifier"), env, "notifier sending mail")
	if !strings.Contains(notifier.logs(), "dev clock starts where it was left") || !strings.Contains(notifier.logs(), "offset=1h15m0s") {
		t.Errorf("the restarted notifier did not start at the kept offset:\n%s", notifier.logs())
	}
	notifier.waitLog(t, "mail not sent: out of date when its turn came", 1)
	if got := mails.Messages(); len(got) != 1 {
		t.Errorf("%d mails; want only the first code's", len(got))
	}
	// The commands service started again goes on from the kept time too.
	commands.stop(t)
	commands = startProcess(t, filepath.Join(bin, "commands"), env, "commands service started")
	adv = mustOK("dev.clock.advance", map[string]any{"seconds": 1})
	if now, _ := time.Parse(time.RFC3339, adv["now"].(string)); now.Before(time.Now().Add(75 * time.Minute)) {
		t.Fatalf("the restarted commands service's clock went back: %v", adv)
	}

	// A refused value moves no clock, anywhere: the next accepted step
	// finds every clock one second further, no more.
	if rep := req("dev.clock.advance", map[string]any{"seconds": 9223372036}); rep["ok"] != false {
		t.Fatalf("overflowing advance accepted: %v", rep)
	}
	commands.waitLog(t, "dev clock advance refused", 1)
	mustOK("dev.clock.advance", map[string]any{"seconds": 1})
	for _, p := range []*process{projector, notifier} {
		p.waitLog(t, "offset=1h15m2s", 1)
	}
	for _, p := range append(procs, commands) {
		if strings.Contains(p.logs(), secretKey) || strings.Contains(p.logs(), mail.Code) {
			t.Errorf("%s logged a secret:\n%s", p.name, p.logs())
		}
	}
}

// opsPage is the address of a process's ops page, as its log says.
func opsPage(t *testing.T, p *process) string {
	t.Helper()
	m := regexp.MustCompile(`readyz=(http://\S+)/readyz`).FindStringSubmatch(p.logs())
	if m == nil {
		t.Fatalf("%s does not say where its ops page is:\n%s", p.name, p.logs())
	}
	return m[1]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// buildBinaries builds cmd/commands, cmd/projector and cmd/notifier (without
// -race: the processes are the system under test, not the test).
// binaries are built once per run of this package's tests, into a
// directory TestMain removes.
var binaries struct {
	once sync.Once
	dir  string
	err  error
}

// buildBinaries builds the components and nats-server at go.mod's version
// (without -race: the processes are the system under test, not the test),
// once for every test of the package; the Go build cache makes a rebuild
// of unchanged code take seconds.
func buildBinaries(t *testing.T) string {
	t.Helper()
	binaries.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			binaries.err = err
			return
		}
		if binaries.dir, binaries.err = os.MkdirTemp("", "authsvc-bin-"); binaries.err != nil {
			return
		}
		cmd := exec.Command(goTool, append([]string{"build", "-o", binaries.dir + string(filepath.Separator)}, clusterBuildTargets...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binaries.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

// clusterBuildTargets are the packages of ClusterBinaries.
var clusterBuildTargets = []string{"./cmd/commands", "./cmd/projector", "./cmd/notifier", "./cmd/web", "github.com/nats-io/nats-server/v2"}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		_ = os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// process is one component running as its own process.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startProcess starts bin with only env (plus PATH and HOME) and waits for
// ready in its log.
func startProcess(t *testing.T, bin string, env []string, ready string) *process {
	t.Helper()
	p := &process{name: filepath.Base(bin), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s's log:\n%s", p.name, p.logs())
		}
	})
	p.waitLog(t, ready, 1)
	return p
}

// waitLog waits until the log holds what at least n times.
func (p *process) waitLog(t *testing.T, what string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.logs(), what) < n {
		select {
		case <-p.done:
			t.Fatalf("%s exited, waiting for %q:\n%s", p.name, what, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q (x%d) in its log:\n%s", p.name, what, n, p.logs())
		}
		time.Sleep(10 * time.Millisecond) // polling, until the deadline above
	}
}

// stop asks the process to stop (SIGTERM) and kills it if it takes long.
func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop on SIGTERM: killed", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) logs() string { return p.out.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
