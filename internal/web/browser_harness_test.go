package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/pgtest"
)

// The browser tests drive headless Chromium (chromedp) against the whole
// dev stack in this process: embedded nats-server, the commands service,
// the projector, the notifier sending into the mail catcher, the dev clock
// and the web front-end on a free port. People read their codes and links
// in the catcher, as in `make run`.

// chromiumPath finds the browser: AUTH_TEST_CHROMIUM, else Debian's
// chromium (scripts/ensure-services installs it), else Chrome.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AUTH_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found for the browser tests: install it (apt-get install -y chromium; `make test` does it through scripts/ensure-services) or set AUTH_TEST_CHROMIUM"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// site is the dev stack and one headless browser; each person gets a
// fresh browser context (no cookies shared) from person().
type site struct {
	t       *testing.T
	dev     *app.Dev
	base    string
	browser context.Context

	mu       sync.Mutex
	accounts int
}

func newSite(t *testing.T) *site {
	t.Helper()
	return newSiteWith(t)
}

// newSiteWith is newSite with more configuration flags (the OpenID
// Connect tests register their clients: -oidc-clients).
func newSiteWith(t *testing.T, extra ...string) *site {
	t.Helper()
	browserPath := chromiumPath(t)
	t.Setenv("AUTH_NATS_URL", "")
	t.Setenv("AUTH_PUBLIC_URL", "") // the mailed links open the web front-end under test
	args := append([]string{"-var-dir", t.TempDir(), "-nats-listen", "127.0.0.1:-1",
		"-database-url", pgtest.NewDatabase(t), "-http-addr", "127.0.0.1:0", "-web-addr", "127.0.0.1:0", "-log-level", "error"}, extra...)
	cfg, err := config.Load("test", args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy.Argon2.Memory, cfg.Policy.Argon2.Time = 256, 1 // cheap hashes: the rules do not depend on them
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := app.StartDev(context.Background(), cfg, io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browserPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start Chromium %s: %v", browserPath, err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return &site{t: t, dev: d, base: d.Web.URL, browser: browser}
}

// account registers a new account through the back-office command and
// returns its NIR and email; opts override the registration's fields.
func (s *site) account(t *testing.T, opts map[string]any) (nir, email string) {
	t.Helper()
	s.mu.Lock()
	s.accounts++
	n := s.accounts
	s.mu.Unlock()
	nir, email = fmt.Sprintf("18501750%05d", n), fmt.Sprintf("assure%d@exemple.fr", n)
	body := map[string]any{"nir": nir, "email": email, "password": password, "email_validated": true, "affiliation": "active", "channel": "backoffice"}
	for k, v := range opts {
		body[k] = v
	}
	s.command(t, "account.register", body)
	return nir, email
}

// command sends a back-office command and wants it done.
func (s *site) command(t *testing.T, subject string, body map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	var rep struct {
		OK    bool            `json:"ok"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(s.dev.Commands.Service.Handle(context.Background(), subject, b), &rep); err != nil || !rep.OK {
		t.Fatalf("%s: %s %v", subject, rep.Error, err)
	}
}

const password = "cheval-agrafe-batterie"

// person is someone at a browser: a fresh browser context, as a new
// profile or a private window would be.
type person struct {
	t    *testing.T
	s    *site
	ctx  context.Context
	seen map[string]bool // mails already read
}

func (s *site) person(t *testing.T) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(s.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return s.personIn(t, ctx)
}

func (s *site) personIn(t *testing.T, ctx context.Context) *person {
	t.Helper()
	// The first run opens the tab, which lives as long as the context of
	// that run: never one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	p := &person{t: t, s: s, ctx: ctx, seen: map[string]bool{}}
	for _, m := range s.dev.Catcher.Messages() {
		p.seen[m.ID] = true
	}
	return p
}

// sameBrowser is the same person coming back later in another tab of the
// same browser context (its cookies kept).
func (p *person) sameBrowser() *person {
	ctx, cancel := chromedp.NewContext(p.ctx)
	p.t.Cleanup(cancel)
	q := p.s.personIn(p.t, ctx)
	q.seen = p.seen
	return q
}

func (p *person) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v (page %s)", what, err, p.path())
	}
}

// open loads a page of the site and returns the HTTP status.
func (p *person) open(path string) int {
	p.t.Helper()
	return p.navigate(path, chromedp.Navigate(p.s.base+path))
}

// click clicks a button or link that loads a page and returns its status.
func (p *person) click(selector string) int {
	p.t.Helper()
	return p.navigate("click "+selector, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

func (p *person) navigate(what string, a chromedp.Action[chromedp.Void]) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	if res == nil {
		return 0
	}
	return int(res.Status)
}

// fill types into a field, as a person would.
func (p *person) fill(selector, text string) {
	p.t.Helper()
	p.run("fill "+selector, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, selector)),
		chromedp.SendKeys(chromedp.CSS(selector), text))
}

// eval runs a read-only expression on the page.
func eval[T any](p *person, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// text is the visible text of the first element matching selector, "" if none.
func (p *person) text(selector string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText.trim()`, selector))
}

// has tells whether an element matches selector.
func (p *person) has(selector string) bool {
	p.t.Helper()
	return eval[bool](p, fmt.Sprintf(`document.querySelector(%q) !== null`, selector))
}

func (p *person) path() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + location.search`))
	return loc
}

// redBox is the red box's text (the seed's « encadré rouge »).
func (p *person) redBox() string { return p.text(".alert-error") }

// wantRedBox wants the red box to say want, exactly.
func (p *person) wantRedBox(want string) {
	p.t.Helper()
	if got := p.redBox(); got != want {
		p.t.Fatalf("red box on %s:\n got  %q\n want %q", p.path(), got, want)
	}
}

// wantPage wants the current path and a heading.
func (p *person) wantPage(path, heading string) {
	p.t.Helper()
	if got, _, _ := strings.Cut(p.path(), "?"); got != path {
		p.t.Fatalf("on %s, want %s (red box %q)", got, path, p.redBox())
	}
	if got := p.text("h1"); got != heading {
		p.t.Fatalf("heading %q on %s, want %q", got, path, heading)
	}
}

// mail waits for the next mail to addr whose subject has subject in it.
func (p *person) mail(addr, subject string) catcher.Message {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := p.s.dev.Catcher.Wait(ctx, func(m catcher.Message) bool {
		return !p.seen[m.ID] && catcher.To(addr)(m) && strings.Contains(m.Subject, subject)
	})
	if err != nil {
		p.t.Fatalf("no mail %q to %s: %v", subject, addr, err)
	}
	p.seen[m.ID] = true
	return m
}

// cookies are the browser context's cookies for the site.
func (p *person) cookies() map[string]*network.Cookie {
	p.t.Helper()
	var res network.GetCookiesResult
	p.run("cookies", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		res, err = cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{p.s.base}})
		return err
	}))
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// shot saves a screenshot of the whole page under var/screenshots/.
func (p *person) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(repoRoot(p.t), "var", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// press sends keys to the focused element (keyboard-only use).
func (p *person) press(keys string) {
	p.t.Helper()
	p.run("keys", chromedp.KeyEvent(keys))
}

// focused is the id of the focused element.
func (p *person) focused() string {
	return eval[string](p, `document.activeElement ? document.activeElement.id : ""`)
}

// tabTo presses Tab until the element with this id has the focus.
func (p *person) tabTo(id string) {
	p.t.Helper()
	for range 15 {
		if p.focused() == id {
			return
		}
		p.press(kb.Tab)
	}
	p.t.Fatalf("Tab never reached #%s on %s", id, p.path())
}

// login goes through the password and code pages and lands home.
func (p *person) login(nir, email, pw string, remember bool) {
	p.t.Helper()
	p.open("/connexion")
	p.fill("#nir", nir)
	p.fill("#password", pw)
	p.click("form[action='/connexion'] button")
	if p.path() == "/accueil" {
		return // a trusted device
	}
	p.click("form[action='/connexion/envoi-code'] button")
	code := p.mail(email, "code de sécurité").Code
	p.fill("#code", code)
	if remember {
		p.run("remember", chromedp.Click(chromedp.CSS("#remember")))
	}
	p.click("form[action='/connexion/code'] button")
	p.wantPage("/accueil", "Bienvenue sur votre compte ameli")
}

// chromedpKey presses keys (Enter on a focused button submits its form).
func chromedpKey(keys string) chromedp.Action[chromedp.Void] { return chromedp.KeyEvent(keys) }

// loggedIn is a person logged in on a new account of their own.
func (s *site) loggedIn(t *testing.T) (p *person, nir, email string) {
	t.Helper()
	nir, email = s.account(t, nil)
	p = s.person(t)
	p.login(nir, email, password, false)
	return p, nir, email
}
