// Package natsusers writes the NATS users' configuration (users.conf, which
// deploy/nats/nats-server.conf includes) for a layout of the events: a
// number of partitions (AUTH_PARTITIONS) and a subject prefix. NATS
// permissions match subjects by whole tokens, so the streams AUTH_EVENTS_0
// to _N-1 and their buckets cannot be one wildcard: each is named, and the
// file differs with N. users.conf.tmpl is the one source: the committed
// deploy/nats/users.conf (one partition) and users-<N>.conf (Committed) are
// its output (`go generate ./deploy`), and `authctl nats users` prints it
// for any N (docs/operations.md, "NATS users and permissions").
package natsusers

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/template"

	"github.com/ameli-auth/authsvc/internal/contract"
)

//go:embed users.conf.tmpl
var source string

var tmpl = template.Must(template.New("users.conf").Option("missingkey=error").Funcs(template.FuncMap{
	// describe names the events streams in a comment.
	"describe": func(streams []string) string {
		if len(streams) == 1 {
			return "the stream " + streams[0]
		}
		return "the streams " + streams[0] + " to " + streams[len(streams)-1]
	},
}).Parse(source))

// Committed are the numbers of partitions whose users.conf is committed
// under deploy/nats, beside users.conf (1): multiples of the 3 nodes of
// the cluster, which spread the partitions' leaders evenly, and powers of
// two. docker-compose.yml mounts users-${AUTH_PARTITIONS}.conf; another
// number needs its file generated first (authctl nats users).
var Committed = []int{1, 2, 3, 4, 6, 8, 12, 16}

// FileName is the committed file of n partitions, in deploy/nats:
// users.conf for one, users-<n>.conf for more. users-1.conf is a link to
// users.conf, so that users-${AUTH_PARTITIONS}.conf names a file for every
// committed number.
func FileName(n int) string {
	if n <= 1 {
		return "users.conf"
	}
	return "users-" + strconv.Itoa(n) + ".conf"
}

// Command is the authctl command line that prints l's file.
func Command(l contract.Layout) string {
	cmd := "authctl nats users --partitions " + strconv.Itoa(l.N())
	if p := l.Subjects().Prefix(); p != contract.DefaultPrefix {
		cmd += " --subject-prefix " + p
	}
	return cmd
}

type data struct {
	N                       int
	Layout, Command, Prefix string
	Streams                 []string // every partition's events stream
	Buckets                 []string // the KV buckets the commands service keeps
	DLQ, NotifierDLQ        string
	Fraud                   string   // the fraud events' stream (AUTH_FRAUD)
	OIDCBuckets             []string // the web's OpenID Connect provider's KV buckets (internal/oidc), OIDC_KEYS apart
	DevClock                string
	Public, BackOffice      []string // the command subjects each front-end may request
}

// Conf is the users.conf of layout l: the users commands, projector,
// notifier, frontend, backoffice and admin, with the permissions each
// needs on every partition's stream and buckets, and its password from the
// server's environment (NATS_PASSWORD_<USER>).
func Conf(l contract.Layout) ([]byte, error) {
	if l.Partitions < 0 || l.Partitions > contract.MaxPartitions {
		return nil, fmt.Errorf("natsusers: %d partitions, want 1 to %d", l.Partitions, contract.MaxPartitions)
	}
	s := l.Subjects()
	d := data{N: l.N(), Command: Command(l), Prefix: s.Prefix(), Streams: l.Streams(), DLQ: contract.DLQStream,
		NotifierDLQ: s.DeadLetters("notifier"), DevClock: s.DevClockAdvance(), Layout: "one partition"}
	if l.Split() {
		d.Layout = fmt.Sprintf("%d partitions", l.N())
	}
	for p := range l.N() {
		d.Buckets = append(d.Buckets, l.IndexBucket(p))
	}
	for p := range l.N() {
		d.Buckets = append(d.Buckets, l.SnapshotBucket(p))
	}
	d.Buckets = append(d.Buckets, contract.ShadowBucket, contract.SourceBucket)
	d.Fraud = contract.FraudStream
	d.OIDCBuckets = []string{"OIDC_REQUESTS", "OIDC_CODES", "OIDC_TOKENS"} // internal/oidc's buckets
	for _, c := range contract.PublicCommands() {
		d.Public = append(d.Public, s.Command(c))
	}
	for _, c := range contract.BackOfficeCommands() {
		d.BackOffice = append(d.BackOffice, s.Command(c))
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("natsusers: %w", err)
	}
	return b.Bytes(), nil
}

// WriteCommitted writes the committed files into dir (deploy/nats): the
// file of every Committed number of partitions under the default prefix,
// and the link users-1.conf -> users.conf.
func WriteCommitted(dir string) error {
	for _, n := range Committed {
		b, err := Conf(contract.Layout{Partitions: n})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, FileName(n)), b, 0o644); err != nil {
			return err
		}
	}
	link := filepath.Join(dir, "users-1.conf")
	if target, err := os.Readlink(link); err == nil && target == FileName(1) {
		return nil
	}
	_ = os.Remove(link)
	return os.Symlink(FileName(1), link)
}
