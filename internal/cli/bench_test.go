package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchCompare: authctl bench compare reads two runs, the old one of
// schema version 1 (no rounds), the new one the whole output of bench
// --json, and prints each figure's change; a missing file is an error.
func TestBenchCompare(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.json")
	nw := filepath.Join(dir, "new.txt")
	if err := os.WriteFile(old, []byte(`{"hash_per_s":100,"login_flows_per_s":90,"login_vs_hash":0.9}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	report := "field  value\nhash_per_s  110 /s\n\n" +
		`{"schema_version":2,"hash_per_s":110,"login_flows_per_s":99,"login_vs_hash":0.9,"warnings":[],` +
		`"hash_per_s_rounds":{"min":105,"median":110,"max":112,"n":6}}` + "\n"
	if err := os.WriteFile(nw, []byte(report), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errw strings.Builder
	if code := Run(ctxTimeout(t, 10*time.Second), []string{"bench", "compare", old, nw}, strings.NewReader(""), &out, &errw); code != 0 {
		t.Fatalf("exit %d: %s", code, errw.String())
	}
	for _, want := range []string{"schema version 1; new: schema version 2", "hash_per_s", "+10.0%", "no spread"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	errw.Reset()
	if code := Run(ctxTimeout(t, 10*time.Second), []string{"bench", "compare", old, filepath.Join(dir, "none.json")}, strings.NewReader(""), &out, &errw); code != 1 || !strings.Contains(errw.String(), "none.json") {
		t.Errorf("missing file: exit %d, %q", code, errw.String())
	}
}
