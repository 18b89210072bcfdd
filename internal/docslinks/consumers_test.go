package docslinks

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/events"
)

// docs/consumers.md lists every event type the events package registers,
// each with the link to its schema file, and no other: the contract other
// teams build on must not drift from the code.
func TestConsumersDocListsEveryEventType(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "consumers.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Event types")
	if start < 0 {
		t.Fatal("docs/consumers.md has no section \"## Event types\"")
	}
	section, _, _ := strings.Cut(doc[start+1:], "\n## ")
	row := regexp.MustCompile("^\\| `([a-z_.]+)` \\|[^|]*\\| \\[([a-z_.]+)\\.json\\]\\(\\.\\./schemas/events/([a-z_.]+)\\.json\\) \\|")
	var listed []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil || m[1] != m[2] || m[1] != m[3] {
			t.Errorf("row without its own schema link: %s", line)
			continue
		}
		listed = append(listed, m[1])
	}
	slices.Sort(listed)
	if want := events.Types(); !slices.Equal(listed, want) {
		t.Errorf("docs/consumers.md lists\n%v\nthe events package registers\n%v", listed, want)
	}
}
