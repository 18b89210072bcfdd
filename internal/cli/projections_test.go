package cli

import (
	"context"
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
	if r := e.authctl(ctx, nil, "projections", "status"); r.code == 0 || !strings.Contains(r.stderr, "AUTH_DATABASE_URL") {
		t.Fatalf("status without a database must say what to set: %d %q", r.code, r.stderr)
	}
}
