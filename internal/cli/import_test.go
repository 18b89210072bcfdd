package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// An import of good and bad rows, run twice (in batches, then one request
// per row): the second run finds the imported accounts present and
// rejects the same rows; an imported bcrypt account then logs in with its
// old password.
func TestAccountImport(t *testing.T) {
	e := newTestEnv(t)
	bc, err := bcrypt.GenerateFromPassword([]byte("ancien-mot-de-passe"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	argon := secrets.HashPassword("autre-mot-de-passe", domain.Argon2Params{Memory: 256, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	lines := []string{
		"nir,email,affiliation,password_hash,email_validated",              // 1
		nirA + ",valerie@yahoo.fr,active," + string(bc) + ",true",          // 2 imported
		"12345,bad@example.fr,active," + string(bc) + ",true",              // 3 bad NIR
		nirB + ",jean@free.fr,active,md5:abcdef,true",                      // 4 bad hash
		"2 84 12 75 123 456,marie@orange.fr,pending,\"" + argon + "\",",    // argon2id PHC has commas: quoted        // 5 imported (email_validated empty: true)
		"1850775123457,paul@gmail.com,active," + string(bc) + ",peut-être", // 6 bad email_validated
		"1850775123458,luc@laposte.net,active",                             // 7 too few fields
		"",                                                                 // blank lines are skipped
		`1850775123459,"anne@sfr.fr",none,` + string(bc) + ",false",        // 9 imported
		"1850775123460,anne@sfr.fr,retired," + string(bc) + ",true",        // 10 bad affiliation
	}
	csvPath := filepath.Join(t.TempDir(), "comptes.csv")
	if err := os.WriteFile(csvPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rejected := regexp.MustCompile(`(?m)^ligne (\d+): ([a-z_]+): (.*)$`)
	run := func(flags ...string) (runResult, []string) {
		t.Helper()
		res := e.authctl(ctxTimeout(t, 20*time.Second), nil, append(append([]string{"account", "import", "--concurrency", "3"}, flags...), csvPath)...)
		var got []string
		for _, m := range rejected.FindAllStringSubmatch(res.stdout, -1) {
			got = append(got, m[1]+" "+m[2])
		}
		return res, got
	}
	wantRejected := "3 invalid_request,4 invalid_request,6 invalid_request,7 invalid_csv,10 invalid_request"

	first, rej1 := run()
	t.Logf("first run:\n%s", first.stdout)
	if first.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", first.code, first.stdout, first.stderr)
	}
	if strings.Join(rej1, ",") != wantRejected {
		t.Errorf("rejected %v, want %s", rej1, wantRejected)
	}
	if !strings.Contains(first.stdout, "importés : 3, déjà présents : 0, rejetés : 5") {
		t.Errorf("first run summary:\n%s", first.stdout)
	}
	for _, want := range []string{
		"ligne 3: invalid_request: Requête invalide : le champ « nir » doit contenir 13 caractères",
		"ligne 4: invalid_request: Requête invalide : le champ « password_hash »",
		"ligne 6: invalid_request: Requête invalide : le champ « email_validated »",
		"ligne 7: invalid_csv: la ligne a 3 champs, l'en-tête en a 5",
		"ligne 10: invalid_request: Requête invalide : le champ « affiliation »",
	} {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// Again, one account.import per row: the same outcome.
	second, rej2 := run("--batch", "1")
	t.Logf("second run:\n%s", second.stdout)
	if second.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", second.code, second.stdout, second.stderr)
	}
	if strings.Join(rej2, ",") != wantRejected {
		t.Errorf("second run rejected %v, want %s", rej2, wantRejected)
	}
	if !strings.Contains(second.stdout, "importés : 0, déjà présents : 3, rejetés : 5") {
		t.Errorf("second run summary:\n%s", second.stdout)
	}

	// The imported bcrypt account logs in with its old password.
	if r := e.req("login.password", map[string]any{"nir": nirA, "password": "ancien-mot-de-passe"}); r.Status != contract.StatusOTPRequired || r.MaskedEmail != "v***@y***.fr" {
		t.Fatalf("login of the imported account: %+v %+v", r, r.Error)
	}
	if r := e.req("login.password", map[string]any{"nir": "2841275123456", "password": "autre-mot-de-passe"}); r.Error == nil || r.Error.Code != domain.CodeAffiliationPending {
		t.Fatalf("pending import: %+v %+v", r, r.Error)
	}

	// A file of good rows only exits 0.
	good := filepath.Join(t.TempDir(), "ok.csv")
	os.WriteFile(good, []byte("email,nir,password_hash,affiliation\nx@example.fr,7123456789012,"+string(bc)+",active\n"), 0o600)
	res := e.authctl(ctxTimeout(t, 20*time.Second), nil, "account", "import", good)
	if res.code != 0 || !strings.Contains(res.stdout, "importés : 1, déjà présents : 0, rejetés : 0") {
		t.Fatalf("exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// The identity's six columns (issue 18): a row with them is imported with
// its identity sealed in account.registered, in batches and one by one; a
// row whose identity disagrees with the NIR is rejected naming the field;
// a row whose six cells are empty is imported without an identity.
func TestAccountImportWithIdentity(t *testing.T) {
	e := newTestEnv(t)
	bc, err := bcrypt.GenerateFromPassword([]byte("ancien-mot-de-passe"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []string{"500", "1"} {
		t.Run("batch_"+batch, func(t *testing.T) {
			e := e
			if batch == "1" {
				e = newTestEnv(t)
			}
			lines := []string{
				"nir,email,affiliation,password_hash,given_name,family_name,birthdate,gender,birthplace,birthcountry",
				nirA + ",valerie@yahoo.fr,active," + string(bc) + ",Valérie,Martin,1969-05-23,female,49588,99100", // 2 imported
				nirB + ",jean@free.fr,active," + string(bc) + ",Jean,Durand,1993-01-02,female,04075,99100",        // 3 wrong gender
				"1850775123459,anne@sfr.fr,active," + string(bc) + ",,,,,,",                                       // 4 no identity
			}
			p := filepath.Join(t.TempDir(), "id.csv")
			os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
			res := e.authctl(ctxTimeout(t, 20*time.Second), nil, "account", "import", "--batch", batch, p)
			if res.code != 1 || !strings.Contains(res.stdout, "importés : 2, déjà présents : 0, rejetés : 1") ||
				!strings.Contains(res.stdout, "ligne 3: invalid_request: Requête invalide : le champ « identity.gender »") {
				t.Fatalf("exit %d\n%s%s", res.code, res.stdout, res.stderr)
			}
			var withID, without int
			for _, env := range e.h.History(e.accountOf(t, nirA)) {
				if r, ok := env.Data.(events.AccountRegistered); ok && r.IdentitySealed != "" {
					withID++
				}
			}
			for _, env := range e.h.History(e.accountOf(t, "1850775123459")) {
				if r, ok := env.Data.(events.AccountRegistered); ok && r.IdentitySealed == "" {
					without++
				}
			}
			if withID != 1 || without != 1 {
				t.Fatalf("registered with identity %d, without %d; want 1 and 1", withID, without)
			}
		})
	}
}

func TestAccountImportBadHeader(t *testing.T) {
	for header, want := range map[string]string{
		"":                        "empty file",
		"nir,email,affiliation\n": `missing column "password_hash"`,
		"nir,email,affiliation,password_hash,x\n":          `unknown column "x"`,
		"nir,nir,email,affiliation,password_hash\n":        `column "nir" appears twice`,
		"nir,email,affiliation,password_hash,given_name\n": `missing column "family_name" (the identity's columns come together`,
	} {
		p := filepath.Join(t.TempDir(), "h.csv")
		os.WriteFile(p, []byte(header), 0o600)
		var out, errw syncBuffer
		// No server: the header is checked before connecting.
		code := Run(t.Context(), []string{"--nats-url", "nats://127.0.0.1:1", "account", "import", p}, strings.NewReader(""), &out, &errw)
		if code != 1 || !strings.Contains(errw.String(), want) {
			t.Errorf("header %q: exit %d, stderr %q, want %q", header, code, errw.String(), want)
		}
	}
}

// An import file is input from outside: a line is read only up to
// maxImportLine bytes (issue 11, kind 3), never whole into memory.
func TestImportLinesAreBounded(t *testing.T) {
	read := func(s string) error {
		_, err := io.Copy(io.Discard, &boundedLines{r: strings.NewReader(s), max: maxImportLine})
		return err
	}
	line := strings.Repeat("a", maxImportLine)
	if err := read(line + "\n" + line + "\n" + line); err != nil {
		t.Fatalf("lines of exactly the limit refused: %v", err)
	}
	if err := read(line + "a"); !errors.Is(err, errLineTooLong) {
		t.Fatalf("a line one byte over the limit: %v", err)
	}
	// A quoted field spanning many short lines is one record.
	short := strings.Repeat("b", 1000) + "\n"
	if err := read(`"nir` + "\n" + strings.Repeat(short, 100)); !errors.Is(err, errLineTooLong) {
		t.Fatalf("a quoted field of 100 KB over many lines: %v", err)
	}
	if err := read(`"a""b",` + "\"x\ny\"\n" + line); err != nil {
		t.Fatalf("escaped quotes and a short quoted newline: %v", err)
	}
	p := filepath.Join(t.TempDir(), "long.csv")
	os.WriteFile(p, []byte(strings.Repeat("x", 10*maxImportLine)), 0o600)
	var out, errw syncBuffer
	code := Run(t.Context(), []string{"--nats-url", "nats://127.0.0.1:1", "account", "import", p}, strings.NewReader(""), &out, &errw)
	if code != 1 || !strings.Contains(errw.String(), "dépasse") {
		t.Fatalf("endless line: exit %d, stderr %q", code, errw.String())
	}
}

// cancelAfter is an event store that calls cancel once the n-th append
// has been asked for: it stops authctl in the middle of an import, as a
// crash or a Ctrl-C would.
type cancelAfter struct {
	eventstore.Store
	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
}

func (s *cancelAfter) arm(n int, cancel context.CancelFunc) {
	s.mu.Lock()
	s.n, s.cancel = n, cancel
	s.mu.Unlock()
}

func (s *cancelAfter) Append(ctx context.Context, accountID string, expected uint64, env events.Envelope, msgID string) (eventstore.AppendResult, error) {
	s.mu.Lock()
	if s.n--; s.n == 0 && s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	return s.Store.Append(ctx, accountID, expected, env, msgID)
}

// An import stopped in the middle (its context cancelled while batches are
// in flight) and run again creates every account exactly once: the second
// run goes on after the rows the state file says are done, finds present
// those done after it, and removes the state file at the end. A file
// changed since the interrupted run is not resumed but sent whole, and
// still creates nothing twice.
func TestAccountImportResumesAfterACrash(t *testing.T) {
	store := &cancelAfter{}
	h := commandstest.Start(t, commandstest.Options{Configure: func(c *commands.Config) {
		store.Store = c.Store
		c.Store = store
	}})
	e := &testEnv{t: t, h: h, srv: h.Server, nc: h.NC, js: h.JS, store: h.Store, keys: h.Keys, clock: h.Clock}
	hash := secrets.HashPassword("ancien-mot-de-passe", commandstest.CheapArgon2)
	dir := t.TempDir()
	file := func(name string, from, n int) (string, []string) {
		var b strings.Builder
		b.WriteString("nir,email,affiliation,password_hash\n")
		nirs := make([]string, n)
		for i := range n {
			nirs[i] = fmt.Sprintf("1%012d", 800_000_000_000+from+i)
			fmt.Fprintf(&b, "%s,r%d@exemple.fr,active,\"%s\"\n", nirs[i], from+i, hash)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return p, nirs
	}
	summary := regexp.MustCompile(`importés : (\d+), déjà présents : (\d+), rejetés : (\d+)`)
	counts := func(out string) (imported, present int) {
		m := summary.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no summary in\n%s", out)
		}
		imported, _ = strconv.Atoi(m[1])
		present, _ = strconv.Atoi(m[2])
		if m[3] != "0" {
			t.Fatalf("rows rejected:\n%s", out)
		}
		return imported, present
	}
	interrupted := func(path string, after int) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		store.arm(after, cancel)
		res := e.authctl(ctx, nil, "account", "import", "--batch", "50", "--concurrency", "1", path)
		if res.code != 1 || !strings.Contains(res.stderr, "interrompu") {
			t.Fatalf("interrupted run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
		st, err := os.ReadFile(path + ".import-state")
		if err != nil {
			t.Fatalf("no state file after the interrupted run: %v", err)
		}
		// The batch that made the after-th append was in flight; those
		// before it are done.
		var saved struct{ Rows int }
		if err := json.Unmarshal(st, &saved); err != nil || saved.Rows < after-50 || saved.Rows >= after {
			t.Fatalf("interrupted run:\n%s%sstate: %s", res.stdout, res.stderr, st)
		}
	}
	// once checks that each NIR has one account with one event.
	once := func(nirs []string) {
		t.Helper()
		for _, nir := range nirs {
			id, err := h.Store.Index().Get(context.Background(), h.Keys.NIRIndexKey(nir))
			if err != nil {
				t.Fatalf("NIR %s not imported: %v", nir, err)
			}
			if last, err := h.Store.LastSeq(context.Background(), id); err != nil || last == 0 {
				t.Fatalf("account of %s has no event: %v", nir, err)
			}
		}
	}

	// Stopped at the 150th of 600 accounts, then run again: resumed. With
	// one batch of 50 in flight at a time, the 150th append comes after
	// the replies of the first two batches: the state file has at least
	// 100 rows done, and the third batch is the service's to finish.
	path, nirs := file("comptes.csv", 0, 600)
	interrupted(path, 150)
	res := e.authctl(ctxTimeout(t, 60*time.Second), nil, "account", "import", "--batch", "50", "--concurrency", "2", path)
	if res.code != 0 || !strings.Contains(res.stdout, "reprise après la ligne") {
		t.Fatalf("resumed run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if imported, present := counts(res.stdout); imported+present != 600 || imported < 100 {
		t.Fatalf("resumed run counts %d imported and %d present, want 600 in all (at least the 100 of the first two batches imported)\n%s", imported, present, res.stdout)
	}
	if _, err := os.Stat(path + ".import-state"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("state file left after a complete import: %v", err)
	}
	if n := h.StreamCount(); n != 600 {
		t.Fatalf("stream has %d events for 600 accounts", n)
	}
	once(nirs)

	// Stopped again on another file, which then changes in its done part:
	// the state is ignored, the file sent whole, nothing created twice.
	path, nirs = file("autres.csv", 600, 400)
	interrupted(path, 175)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "r601@exemple.fr", "r601@exemple.com", 1)), 0o600)
	res = e.authctl(ctxTimeout(t, 60*time.Second), nil, "account", "import", "--batch", "50", "--concurrency", "2", path)
	if res.code != 0 || !strings.Contains(res.stderr, "le fichier a changé") || strings.Contains(res.stdout, "reprise") {
		t.Fatalf("run on a changed file: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if imported, present := counts(res.stdout); imported+present != 400 || present < 100 {
		t.Fatalf("run on a changed file counts %d imported and %d present, want 400 in all (at least 100 present)\n%s", imported, present, res.stdout)
	}
	if n := h.StreamCount(); n != 1000 {
		t.Fatalf("stream has %d events for 1000 accounts", n)
	}
	once(nirs)
}

// accountOf is the account of a canonical NIR, from the index.
func (e *testEnv) accountOf(t *testing.T, nir string) string {
	t.Helper()
	id, err := e.h.Store.Index().Get(context.Background(), e.h.Keys.NIRIndexKey(nir))
	if err != nil {
		t.Fatalf("index of %s: %v", nir, err)
	}
	return id
}
