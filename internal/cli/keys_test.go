package cli

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/secrets"
)

// authctl keys new makes a usable key; authctl keys ids prints the ids of
// the configured keys, current first, from the variables or their files,
// and never a key.
func TestKeysCommand(t *testing.T) {
	run := func(args ...string) (string, string, int) {
		var out, errw syncBuffer
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errw)
		return out.String(), errw.String(), code
	}
	t.Setenv("AUTH_SECRET_KEY", "")
	t.Setenv("AUTH_SECRET_KEY_PREVIOUS", "")
	fresh, _, code := run("keys", "new")
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(fresh))
	if code != 0 || err != nil || len(b) != secrets.KeySize {
		t.Fatalf("keys new: %q exit %d", fresh, code)
	}
	old, _ := secrets.NewKeys(testMasterKey)
	cur, _ := secrets.NewKeys(b)
	prevFile := filepath.Join(t.TempDir(), "previous")
	if err := os.WriteFile(prevFile, []byte(testSecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUTH_SECRET_KEY", strings.TrimSpace(fresh))
	t.Setenv("AUTH_SECRET_KEY_PREVIOUS_FILE", prevFile)
	t.Setenv("AUTH_SECRET_KEY_PREVIOUS", "")
	out, errs, code := run("keys", "ids")
	want := "current     " + cur.ID() + "\nprevious 1  " + old.ID() + "\n"
	if code != 0 || out != want {
		t.Fatalf("keys ids: exit %d, %q (stderr %q); want %q", code, out, errs, want)
	}
	if strings.Contains(out, testSecretKey) || strings.Contains(out, strings.TrimSpace(fresh)) {
		t.Fatal("keys ids shows a key")
	}
	t.Setenv("AUTH_SECRET_KEY_PREVIOUS_FILE", "")
	t.Setenv("AUTH_SECRET_KEY_PREVIOUS", "AAAA")
	if _, errs, code := run("keys", "ids"); code == 0 || !strings.Contains(errs, "AUTH_SECRET_KEY_PREVIOUS: key 1") {
		t.Fatalf("a bad previous key: exit %d, %q", code, errs)
	}
}
