package domain

import (
	"os/exec"
	"strings"
	"testing"
)

// The decider and the events stay pure: no NATS, Postgres, Watermill or
// other I/O library may creep into them (STYLE.md, "The shape of the house").
func TestDomainAndEventsImportNoInfrastructure(t *testing.T) {
	allowed := map[string]bool{
		"github.com/ameli-auth/authsvc/internal/events": true,
		"github.com/ameli-auth/authsvc/internal/domain": true,
		"github.com/oklog/ulid/v2":                      true, // event ids
	}
	for _, pkg := range []string{"github.com/ameli-auth/authsvc/internal/domain", "github.com/ameli-auth/authsvc/internal/events"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			// JSON decoding, pure (issue 17: events.Unmarshal reads a
			// message in one pass with its jsontext).
			jsonv2 := dep == "github.com/go-json-experiment/json" || strings.HasPrefix(dep, "github.com/go-json-experiment/json/")
			if !allowed[dep] && !jsonv2 {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
