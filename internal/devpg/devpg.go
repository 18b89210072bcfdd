// Package devpg finds a Postgres for dev mode: AUTH_DATABASE_URL when set,
// else the machine's local server, else a private server started from the
// machine's PostgreSQL binaries (initdb, pg_ctl) under <var>/pg. initdb
// refuses to run as root, so as root the private server runs as the
// `postgres` system user.
package devpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is the dev database, and the private server behind it if one was
// started.
type Database struct {
	URL     string
	Private *Server
}

// Server is a private Postgres started by Ensure.
type Server struct {
	dir    string
	pgCtl  string
	runAs  *user.User
	Port   int
	logger *slog.Logger
}

// DefaultLocalURL is the machine's server, as the go-svc machines have it.
const DefaultLocalURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DevDatabase is the database dev mode uses on a shared server.
const DevDatabase = "ameli_auth_dev"

// ClusterDatabase is the database of `authctl dev --cluster` on a shared
// server: its own, as its events are in another stream than dev mode's.
const ClusterDatabase = "ameli_auth_cluster"

// Ensure returns a database for dev mode, in this order: explicitURL; the
// local server (creating DevDatabase in it); a private server under
// varDir/pg (kept between runs). It says clearly what to do when none works.
func Ensure(ctx context.Context, explicitURL, varDir string, log *slog.Logger) (*Database, error) {
	return EnsureNamed(ctx, explicitURL, varDir, DevDatabase, log)
}

// EnsureNamed is Ensure with the database named name instead of
// DevDatabase (on the local or the private server; explicitURL is taken
// as it is).
func EnsureNamed(ctx context.Context, explicitURL, varDir, name string, log *slog.Logger) (*Database, error) {
	if explicitURL != "" {
		if err := ping(ctx, explicitURL); err != nil {
			return nil, fmt.Errorf("AUTH_DATABASE_URL does not answer: %w", err)
		}
		return &Database{URL: explicitURL}, nil
	}
	if u, err := createDatabase(ctx, DefaultLocalURL, name); err == nil {
		log.Info("dev Postgres: the local server", "database", name)
		return &Database{URL: u}, nil
	}
	srv, err := StartPrivate(ctx, filepath.Join(varDir, "pg"), log)
	if err != nil {
		return nil, fmt.Errorf("no Postgres for dev mode: AUTH_DATABASE_URL is unset, nothing answers on 127.0.0.1:5432, "+
			"and a private server could not be started (%w). Install PostgreSQL (apt-get install postgresql) or set AUTH_DATABASE_URL", err)
	}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", srv.Port)
	u, err := createDatabase(ctx, admin, name)
	if err != nil {
		_ = srv.Stop()
		return nil, err
	}
	return &Database{URL: u, Private: srv}, nil
}

func ping(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.Ping(ctx)
}

// createDatabase creates db on the server of adminURL if it is missing and
// returns its URL.
func createDatabase(ctx context.Context, adminURL, db string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return "", fmt.Errorf("look for database %s: %w", db, err)
	}
	if !exists {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", db, err)
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	return u.String(), nil
}

// binDir finds the directory of initdb and pg_ctl: PATH, then Debian's
// /usr/lib/postgresql/<version>/bin (newest first).
func binDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found (PATH, /usr/lib/postgresql/*/bin)")
}

// StartPrivate starts (initialising it the first time) a Postgres cluster in
// dir, listening on 127.0.0.1 on a free port, trust auth for local use only.
func StartPrivate(ctx context.Context, dir string, log *slog.Logger) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, pgCtl: filepath.Join(bin, "pg_ctl"), logger: log}
	if os.Geteuid() == 0 {
		if s.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, errors.New("running as root, and initdb refuses root: no `postgres` system user to run it as")
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := s.chown(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		log.Info("dev Postgres: initialising a private cluster", "dir", dir)
		if out, err := s.run(ctx, filepath.Join(bin, "initdb"), "-D", dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-instructions"); err != nil {
			return nil, fmt.Errorf("initdb: %w: %s", err, out)
		}
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", s.Port, dir)
	if out, err := s.run(ctx, s.pgCtl, "-D", dir, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "30", "-o", opts, "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	log.Info("dev Postgres: private server started", "dir", dir, "port", s.Port)
	return s, nil
}

// Stop stops the private server, waiting for it.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := s.run(ctx, s.pgCtl, "-D", s.dir, "-w", "-m", "fast", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

func (s *Server) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if s.runAs != nil {
		uid, _ := strconv.Atoi(s.runAs.Uid)
		gid, _ := strconv.Atoi(s.runAs.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(os.Environ(), "HOME="+s.runAs.HomeDir)
	}
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// chown gives dir (and its parents up to an accessible one) to the user the
// server runs as.
func (s *Server) chown(dir string) error {
	if s.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.runAs.Uid)
	gid, _ := strconv.Atoi(s.runAs.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", dir, err)
	}
	// The postgres user must be able to reach dir through its parents.
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(p, fi.Mode().Perm()|0o011)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
