package natsusers_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/natsusers"
)

var deployDir = filepath.Join("..", "..", "deploy", "nats")

// The files under deploy/nats are the template's output, byte for byte:
// users.conf for one partition (the default), users-<N>.conf for the
// committed numbers, users-1.conf a link to users.conf, and no other
// users file (a stale one would be mounted by docker-compose.yml).
func TestCommittedFilesAreGenerated(t *testing.T) {
	for _, n := range natsusers.Committed {
		want, err := natsusers.Conf(contract.Layout{Partitions: n})
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(deployDir, natsusers.FileName(n)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/nats/%s is not the generated file for %d partitions: run go generate ./deploy", natsusers.FileName(n), n)
		}
	}
	if target, err := os.Readlink(filepath.Join(deployDir, "users-1.conf")); err != nil || target != "users.conf" {
		t.Errorf("deploy/nats/users-1.conf: link to %q (%v), want users.conf", target, err)
	}
	files, err := filepath.Glob(filepath.Join(deployDir, "users*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if name != "users-1.conf" && !slices.ContainsFunc(natsusers.Committed, func(n int) bool { return natsusers.FileName(n) == name }) {
			t.Errorf("deploy/nats/%s is not generated (natsusers.Committed)", name)
		}
	}
}

// users parses a generated file with the nats-server's own parser.
func users(t *testing.T, l contract.Layout) map[string]*server.User {
	t.Helper()
	for _, u := range []string{"commands", "projector", "notifier", "frontend", "backoffice", "admin"} {
		t.Setenv("NATS_PASSWORD_"+strings.ToUpper(u), "pw")
	}
	b, err := natsusers.Conf(l)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "users.conf")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(f)
	if err != nil {
		t.Fatalf("%d partitions: %v", l.N(), err)
	}
	out := map[string]*server.User{}
	for _, u := range o.Users {
		out[u.Username] = u
	}
	return out
}

func may(u *server.User, subject string) bool {
	p := u.Permissions.Publish
	allowed := slices.ContainsFunc(p.Allow, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
	denied := slices.ContainsFunc(p.Deny, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
	return allowed && !denied
}

// For every number of partitions, each user may do on every partition's
// stream and buckets what it does on the one stream, and nothing on a
// partition the layout does not have; under another prefix, the subjects
// follow.
func TestEveryPartitionIsNamed(t *testing.T) {
	for _, l := range []contract.Layout{{Partitions: 1}, {Partitions: 5}, {Partitions: contract.MaxPartitions}, {Prefix: "ameli", Partitions: 3}} {
		t.Run(strconv.Itoa(l.N())+l.Prefix, func(t *testing.T) {
			us := users(t, l)
			api := func(op string) string { return "$JS.API." + op }
			for p := range l.N() + 1 {
				in := p < l.N()
				stream, index, snaps := l.Stream(p), l.IndexBucket(p), l.SnapshotBucket(p)
				if !l.Split() && p == 1 {
					stream, index, snaps = contract.EventsStream+"_1", contract.NIRIndexBucket+"_1", contract.SnapshotBucket+"_1"
				}
				for user, subjects := range map[string][]string{
					"commands": {api("STREAM.CREATE." + stream), api("STREAM.UPDATE." + stream), api("STREAM.INFO." + stream),
						api("DIRECT.GET." + stream + "." + l.Subjects().Events("X")), api("CONSUMER.CREATE." + stream + ".c1.x"),
						api("CONSUMER.MSG.NEXT." + stream + ".c1"), api("STREAM.CREATE.KV_" + index), "$KV." + index + ".k",
						api("DIRECT.GET.KV_" + snaps + ".$KV." + snaps + ".a"), "$KV." + snaps + ".a"},
					"projector": {api("STREAM.INFO." + stream), api("DIRECT.GET." + stream), api("CONSUMER.CREATE." + stream + ".projector.x"),
						api("CONSUMER.DELETE." + stream + ".projector"), "$JS.ACK." + stream + ".projector.1.2.3.4.5.6.7"},
					"notifier": {api("STREAM.INFO." + stream), api("DIRECT.GET." + stream), api("CONSUMER.CREATE." + stream + ".notifier.x"),
						api("CONSUMER.MSG.NEXT." + stream + ".notifier"), "$JS.ACK." + stream + ".notifier.1.2.3.4.5.6.7"},
				} {
					for _, s := range subjects {
						if may(us[user], s) != in {
							t.Errorf("partition %d of %d: %s may publish %s: %v", p, l.N(), user, s, !in)
						}
					}
				}
				for user, u := range us {
					if user != "admin" && may(u, api("STREAM.DELETE."+stream)) || in && may(u, api("STREAM.DELETE."+stream)) {
						t.Errorf("%s may delete %s", user, stream)
					}
				}
				if !in && !may(us["admin"], api("STREAM.INFO."+stream)) {
					t.Errorf("admin may not read %s", stream)
				}
			}
			event := l.Events("01M8QG8TQKRW4KX1C0B8KR11D2")
			for user, u := range us {
				if may(u, event) != (user == "commands") {
					t.Errorf("%s may publish the event subject %s: %v", user, event, may(u, event))
				}
			}
			if !may(us["frontend"], l.Subjects().Command(contract.CmdLoginPassword)) || may(us["frontend"], l.Subjects().Command(contract.CmdAccountUnlock)) {
				t.Error("the frontend's commands do not follow the prefix")
			}
			if !may(us["notifier"], l.Subjects().DeadLetters("notifier")) {
				t.Error("the notifier's dead letters do not follow the prefix")
			}
		})
	}
	if _, err := natsusers.Conf(contract.Layout{Partitions: contract.MaxPartitions + 1}); err == nil {
		t.Error("65 partitions accepted")
	}
}
