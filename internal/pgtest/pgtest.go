// Package pgtest gives each test its own Postgres database, so runs never
// see each other's rows, and drops it afterwards.
//
// The server is AUTH_TEST_DATABASE_URL, else the machine's
// postgres://postgres@127.0.0.1:5432/postgres (trust auth). Where no server
// answers, the test fails under CI=true and is skipped, loudly, elsewhere.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ameli-auth/authsvc/internal/config"
)

// ServerURL is the admin URL of the test server.
func ServerURL() string {
	return config.Lookup("AUTH_TEST_DATABASE_URL")
}

// NewDatabase creates a fresh database and returns its URL; it is dropped
// when the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := ServerURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		msg := fmt.Sprintf("Postgres is not reachable at %s (%v): start it (`make test` does) or set AUTH_TEST_DATABASE_URL", config.Redact(admin), err)
		if config.Lookup("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "authtest_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", config.Redact(admin), err)
	}
	u.Path = "/" + name
	return u.String()
}
