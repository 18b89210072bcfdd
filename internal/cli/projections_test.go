package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ameli-auth/authsvc/internal/pgtest"
)

// migrate, then rebuild from the stream, then status: the read models hold
// every account and the checkpoint is the stream's end.
func TestMigrateRebuildStatus(t *testing.T) {
	e := newTestEnv(t)
	db := pgtest.NewDatabase(t)
	acc1 := e.register("2690549588157", "valerie@yahoo.fr")
	acc2 := e.register("1933304075242", "jean@exemple.fr")
	ctx := ctxTimeout(t, time.Minute)

	if r := e.authctl(ctx, nil, "migrate", "--database-url", db); r.code != 0 || !strings.Contains(r.stdout, "migrated") {
		t.Fatalf("migrate: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r := e.authctl(ctx, nil, "projections", "rebuild", "--database-url", db)
	if r.code != 0 || !strings.Contains(r.stdout, "rebuilt: 2 events replayed") {
		t.Fatalf("rebuild: %d %q %q", r.code, r.stdout, r.stderr)
	}
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM auth.accounts WHERE account_id IN ($1, $2)", acc1, acc2).Scan(&n); err != nil || n != 2 {
		t.Fatalf("accounts after rebuild: %d %v", n, err)
	}
	st := e.authctl(ctx, nil, "projections", "status", "--database-url", db)
	if st.code != 0 || !strings.Contains(st.stdout, "checkpoint      2 (stream at 2)") || !strings.Contains(st.stdout, "lag             0 events") {
		t.Fatalf("status: %d %q %q", st.code, st.stdout, st.stderr)
	}
	if r := e.authctl(ctx, nil, "projections", "status", "--var-dir", t.TempDir()); r.code == 0 || !strings.Contains(r.stderr, "AUTH_DATABASE_URL") {
		t.Fatalf("status without a database must say what to set: %d %q", r.code, r.stderr)
	}
}

// In dev mode `authctl projections status` needs no flag: it finds the NATS
// and the database of the dev mode running on the var dir in its dev.json.
func TestProjectionsStatusFindsDevMode(t *testing.T) {
	e := newTestEnv(t)
	db := pgtest.NewDatabase(t)
	e.register("2690549588157", "valerie@yahoo.fr")
	ctx := ctxTimeout(t, time.Minute)
	if r := e.authctl(ctx, nil, "projections", "rebuild", "--database-url", db); r.code != 0 {
		t.Fatalf("rebuild: %d %s %s", r.code, r.stdout, r.stderr)
	}
	varDir := t.TempDir()
	state, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "nats_url": e.srv.ClientURL(), "database_url": db, "subject_prefix": "auth"})
	if err := os.WriteFile(filepath.Join(varDir, "dev.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUTH_NATS_URL", "")
	t.Setenv("AUTH_DATABASE_URL", "")
	t.Setenv("AUTH_VAR_DIR", varDir)
	var out, errw syncBuffer
	if code := Run(ctx, []string{"projections", "status"}, strings.NewReader(""), &out, &errw); code != 0 ||
		!strings.Contains(out.String(), "checkpoint      1 (stream at 1)") {
		t.Fatalf("status in dev mode without flags: exit %d\n%s%s", code, out.String(), errw.String())
	}
	// A dev.json left by a dev mode that is gone is not followed.
	state, _ = json.Marshal(map[string]any{"pid": 0, "nats_url": e.srv.ClientURL(), "database_url": db})
	if err := os.WriteFile(filepath.Join(varDir, "dev.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := Run(ctx, []string{"projections", "status"}, strings.NewReader(""), &out, &errw); code == 0 {
		t.Fatal("status followed a stale dev.json")
	}
	// With no dev mode running there, the local cluster's cluster.json
	// (make cluster) is followed the same way.
	out, errw = syncBuffer{}, syncBuffer{}
	state, _ = json.Marshal(map[string]any{"pid": os.Getpid(), "nats_url": e.srv.ClientURL(), "database_url": db, "subject_prefix": "auth",
		"web_url": "http://127.0.0.1:8090", "processes": []any{}})
	if err := os.WriteFile(filepath.Join(varDir, "cluster.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := Run(ctx, []string{"projections", "status"}, strings.NewReader(""), &out, &errw); code != 0 ||
		!strings.Contains(out.String(), "checkpoint      1 (stream at 1)") {
		t.Fatalf("status with the local cluster running, without flags: exit %d\n%s%s", code, out.String(), errw.String())
	}
}

// With four partitions, rebuild and status find them on the server (no
// flag), replay every partition and show each one's checkpoint; told one
// partition, they look for AUTH_EVENTS and say it is not there.
func TestRebuildStatusOverFourPartitions(t *testing.T) {
	e := newPartitionedTestEnv(t, 4)
	db := pgtest.NewDatabase(t)
	for i, nir := range []string{"2690549588157", "1933304075242", "1840376451089", "2550814168025"} {
		e.register(nir, fmt.Sprintf("titulaire%d@exemple.fr", i))
	}
	ctx := ctxTimeout(t, time.Minute)
	r := e.authctl(ctx, nil, "projections", "rebuild", "--database-url", db)
	if r.code != 0 || !strings.Contains(r.stdout, "rebuilt: 4 events replayed from 4 partitions") {
		t.Fatalf("rebuild: %d %q %q", r.code, r.stdout, r.stderr)
	}
	var n int
	if err := pgxQueryRow(t, db, "SELECT count(*) FROM auth.accounts").Scan(&n); err != nil || n != 4 {
		t.Fatalf("accounts after rebuild: %d %v", n, err)
	}
	st := e.authctl(ctx, nil, "projections", "status", "--database-url", db)
	if st.code != 0 || !strings.Contains(st.stdout, "checkpoint      4 (stream at 4)") || !strings.Contains(st.stdout, "lag             0 events") {
		t.Fatalf("status: %d %q %q", st.code, st.stdout, st.stderr)
	}
	rows := regexp.MustCompile(`(?m)^([0-3]) +AUTH_EVENTS_([0-3]) +(\d+) +(\d+) +0 +0\.0 +-$`).FindAllStringSubmatch(st.stdout, -1)
	if len(rows) != 4 {
		t.Fatalf("status: want a line per partition, caught up, no replica running:\n%s", st.stdout)
	}
	for _, row := range rows {
		if row[1] != row[2] || row[3] != row[4] {
			t.Errorf("partition line %q", row[0])
		}
	}
	if r := e.authctl(ctx, nil, "--partitions", "1", "projections", "status", "--database-url", db); r.code == 0 || !strings.Contains(r.stderr, "stream not found") {
		t.Fatalf("status told one partition: %d %q", r.code, r.stderr)
	}
	if r := e.authctl(ctx, nil, "--partitions", "65", "projections", "status", "--database-url", db); r.code != 2 {
		t.Fatalf("--partitions 65: exit %d %q, want a usage error", r.code, r.stderr)
	}
}

func pgxQueryRow(t *testing.T, url, query string) pgx.Row {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn.QueryRow(context.Background(), query)
}
