package projector

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/ameli-auth/authsvc/internal/projections"
)

// Schema is where the live read models are.
const Schema = projections.Name

// shadowSchema is where a rebuild builds the new read models before the swap.
const shadowSchema = Schema + "_rebuild"

// retiredSchema holds the old read models for the instant of the swap.
const retiredSchema = Schema + "_retired"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrNoDatabase is returned when no Postgres URL is configured.
var ErrNoDatabase = errors.New("AUTH_DATABASE_URL is not set: the projector needs a Postgres database, " +
	"e.g. AUTH_DATABASE_URL=postgres://user:password@host:5432/authsvc?sslmode=disable")

// Migrate brings the read models (schema auth) to the latest version of the
// embedded migrations. Safe to run from several processes at once: they
// take turns on an advisory lock. The projector runs it at start;
// `authctl migrate` runs it on its own.
func Migrate(ctx context.Context, databaseURL string) error {
	if databaseURL == "" {
		return ErrNoDatabase
	}
	_, err := migrateSchema(ctx, databaseURL, Schema)
	return err
}

// MigrationVersion returns the schema's current and latest migration
// versions.
func MigrationVersion(ctx context.Context, databaseURL string) (current, latest int64, err error) {
	if databaseURL == "" {
		return 0, 0, ErrNoDatabase
	}
	p, db, err := provider(databaseURL, Schema)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	return p.GetVersions(ctx)
}

// migrateSchema creates the schema if needed and applies the migrations to
// it. It returns the version reached.
func migrateSchema(ctx context.Context, databaseURL, schema string) (int64, error) {
	p, db, err := provider(databaseURL, schema)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	// Serialise migrators (replicas start together): CREATE SCHEMA IF NOT
	// EXISTS and goose's version table are not safe against a concurrent twin.
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: connect: %w", schema, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockKey("migrate", schema)); err != nil {
		return 0, fmt.Errorf("migrate %s: lock: %w", schema, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey("migrate", schema)) //nolint:errcheck // the session ends right after
	if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return 0, fmt.Errorf("migrate %s: create schema: %w", schema, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrate %s: %w", schema, err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: version: %w", schema, err)
	}
	return v, nil
}

// provider opens a database/sql handle whose sessions resolve unqualified
// names in schema, and a goose provider keeping its version table there
// too, so a schema carries its own migration history through a swap.
func provider(databaseURL, schema string) (*goose.Provider, *sql.DB, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("AUTH_DATABASE_URL: %w", err)
	}
	cfg.RuntimeParams["search_path"] = schema
	cfg.RuntimeParams["application_name"] = "authsvc-migrate"
	db := stdlib.OpenDB(*cfg)
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithTableName(schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	return p, db, nil
}

// lockKey is the advisory lock key of one purpose on one schema or
// projection: a stable 63-bit hash, so every process agrees on it.
func lockKey(purpose, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("authsvc/projector/" + purpose + "/" + strings.ToLower(name)))
	return int64(h.Sum64() >> 1)
}
