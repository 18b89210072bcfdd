package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// An import of good and bad rows, run twice: the second run finds the
// imported accounts present and rejects the same rows; an imported bcrypt
// account then logs in with its old password.
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
	run := func() (runResult, []string) {
		t.Helper()
		res := e.authctl(ctxTimeout(t, 20*time.Second), nil, "account", "import", "--concurrency", "3", csvPath)
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

	second, rej2 := run()
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

func TestAccountImportBadHeader(t *testing.T) {
	for header, want := range map[string]string{
		"":                        "empty file",
		"nir,email,affiliation\n": `missing column "password_hash"`,
		"nir,email,affiliation,password_hash,x\n":   `unknown column "x"`,
		"nir,nir,email,affiliation,password_hash\n": `column "nir" appears twice`,
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
