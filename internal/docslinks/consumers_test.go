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
// each with the link to its schema file, and no other; and in its own
// section, the fraud events of AUTH_FRAUD: the contract other teams build
// on must not drift from the code.
func TestConsumersDocListsEveryEventType(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "consumers.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, c := range []struct {
		section, schemas string
		want             []string
	}{
		{"## Event types", "events", events.Types()},
		{"## Fraud events", "fraud", events.FraudTypes()},
	} {
		if listed := typesListed(t, doc, c.section, c.schemas); !slices.Equal(listed, c.want) {
			t.Errorf("docs/consumers.md %q lists\n%v\nthe events package has\n%v", c.section, listed, c.want)
		}
	}
}

// typesListed reads the type table of a section: each row's type, which
// must link to its own schema in schemas/<dir>/.
func typesListed(t *testing.T, doc, heading, dir string) []string {
	t.Helper()
	start := strings.Index(doc, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("docs/consumers.md has no section %q", heading)
	}
	section, _, _ := strings.Cut(doc[start+2:], "\n## ")
	row := regexp.MustCompile("^\\| `([a-z_.]+)` \\|[^|]*\\| \\[([a-z_.]+)\\.json\\]\\(\\.\\./schemas/" + dir + "/([a-z_.]+)\\.json\\) \\|")
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
	return listed
}
