package docslinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/config"
)

// The README's configuration table names every setting of the one settings
// table (config.Settings), and no variable that is not there: the front
// door must not drift from the code.
func TestTheReadmeListsEverySetting(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section, _, _ := strings.Cut(string(b)[strings.Index(string(b), "## Configuration"):], "\n## Documentation")
	listed := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, name := range strings.Split(first, ",") {
			listed[strings.Trim(strings.TrimSpace(name), "`")] = true
		}
	}
	known := map[string]bool{}
	for _, s := range config.Settings() {
		known[s.Env] = true
		if s.Secret {
			known[s.Env+"_FILE"] = true
		}
		if !listed[s.Env] && s.Env != "CI" {
			t.Errorf("README.md's configuration table does not list %s", s.Env)
		}
	}
	for name := range listed {
		if !known[name] {
			t.Errorf("README.md's configuration table lists %s, which config.Settings does not know", name)
		}
	}
}
