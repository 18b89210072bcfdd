package devpg

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// A private cluster starts from the machine's binaries, serves a database,
// stops, and starts again with its data (dev mode keeps data between runs).
func TestPrivateServerKeepsItsData(t *testing.T) {
	if _, err := binDir(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "var", "pg")
	srv, err := StartPrivate(ctx, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	admin := "postgres://postgres@127.0.0.1:" + itoa(srv.Port) + "/postgres?sslmode=disable"
	u, err := createDatabase(ctx, admin, DevDatabase)
	if err != nil {
		_ = srv.Stop()
		t.Fatal(err)
	}
	if err := ping(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	again, err := StartPrivate(ctx, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop()
	admin = "postgres://postgres@127.0.0.1:" + itoa(again.Port) + "/" + DevDatabase + "?sslmode=disable"
	if err := ping(ctx, admin); err != nil {
		t.Fatalf("the dev database did not survive a restart: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
