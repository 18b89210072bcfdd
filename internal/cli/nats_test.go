package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/natsusers"
)

// authctl nats users prints the committed files for their numbers of
// partitions (AUTH_PARTITIONS or --partitions) and refuses a number out of
// range.
func TestNATSUsersPrintsTheCommittedFiles(t *testing.T) {
	ctx := ctxTimeout(t, 10*time.Second)
	run := func(args ...string) runResult {
		var out, errw syncBuffer
		code := Run(ctx, args, strings.NewReader(""), &out, &errw)
		return runResult{stdout: out.String(), stderr: errw.String(), code: code}
	}
	for _, c := range []struct {
		args []string
		file string
	}{
		{[]string{"nats", "users"}, "users.conf"},
		{[]string{"nats", "users", "--partitions", "1"}, "users.conf"},
		{[]string{"nats", "users", "--partitions", "4"}, "users-4.conf"},
		{[]string{"--partitions", "12", "nats", "users"}, "users-12.conf"},
	} {
		want, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nats", c.file))
		if err != nil {
			t.Fatal(err)
		}
		if r := run(c.args...); r.code != 0 || !bytes.Equal([]byte(r.stdout), want) {
			t.Errorf("authctl %s: exit %d %s, not deploy/nats/%s", strings.Join(c.args, " "), r.code, r.stderr, c.file)
		}
	}
	t.Setenv("AUTH_PARTITIONS", "6")
	want, _ := natsusers.Conf(contract.Layout{Partitions: 6})
	if r := run("nats", "users"); r.code != 0 || r.stdout != string(want) {
		t.Errorf("AUTH_PARTITIONS=6: exit %d %s", r.code, r.stderr)
	}
	if r := run("nats", "users", "--partitions", "65"); r.code != 2 || !strings.Contains(r.stderr, "from 1 to 64") {
		t.Errorf("65 partitions: exit %d %q", r.code, r.stderr)
	}
}

// authctl bench measures one partition on streams of its own: asked for
// more, it says so instead of printing figures of another layout.
func TestBenchRefusesPartitions(t *testing.T) {
	var out, errw syncBuffer
	code := Run(ctxTimeout(t, 10*time.Second), []string{"--partitions", "4", "bench", "--quick"}, strings.NewReader(""), &out, &errw)
	if code != 2 || !strings.Contains(errw.String(), "authctl bench measures one partition") {
		t.Fatalf("exit %d: %s", code, errw.String())
	}
}
