package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/devpg"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// runner is one run: the stack it set up and what it must remove.
type runner struct {
	opts  Options
	sizes Sizes
	res   *Result
	mem   *peaks

	tmp      string
	srv      *server.Server // the embedded nats-server, if any
	natsURL  string
	nc       *nats.Conn
	js       jetstream.JetStream
	store    *eventstore.JetStream
	streamCf eventstore.JetStreamConfig
	keys     *secrets.Keys
	suffix   string // makes this run's names its own on a shared server

	external bool // NATS is not ours: remove what we created there
	mu       sync.Mutex
	streams  []string // created on the server, deleted at the end
	buckets  []string // KV buckets this run created (external NATS only)
	nirKeys  []string // NIR index keys created (external NATS only)
	accounts []string // accounts the commands may have snapshotted (external NATS only)
	conns    []*nats.Conn
	nirSeq   atomic.Int64

	dbURL, dbName, dbAdmin string
	private                *devpg.Server

	retries     atomic.Int64         // requests and appends tried again after a timeout
	roundValues map[string][]float64 // each figure's rounds (Result.Spreads)

	hashObserver func(key string) // given to the commands instances started next
	uncompressed bool             // the stream without S2 (EventSizes' before)
	attemptsTTL  time.Duration    // the login attempts' retention (EventSizes)
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "bench: "+format+"\n", args...)
}

func (r *runner) setup(ctx context.Context) error {
	master := make([]byte, secrets.KeySize)
	rand.Read(master)
	keys, err := secrets.NewKeys(master)
	if err != nil {
		return err
	}
	r.keys = keys
	b := make([]byte, 4)
	rand.Read(b)
	r.suffix = hex.EncodeToString(b)
	if r.tmp, err = os.MkdirTemp("", "authbench-"); err != nil {
		return err
	}
	r.streamCf = eventstore.JetStreamConfig{Uncompressed: r.uncompressed, AttemptsTTL: r.attemptsTTL} // the production names on our own server
	if r.opts.NATSURL == "" {
		if r.srv, err = natsutil.StartEmbedded(natsutil.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(r.tmp, "nats")}); err != nil {
			return err
		}
		r.natsURL = r.srv.ClientURL()
		r.progress("embedded nats-server on %s, store in %s", r.natsURL, r.tmp)
	} else {
		r.natsURL, r.external = r.opts.NATSURL, true
		r.streamCf = eventstore.JetStreamConfig{Prefix: "authbench" + r.suffix, Stream: "AUTHBENCH_" + strings.ToUpper(r.suffix)}
		r.progress("nats-server %s: stream %s, subjects %s.>", config.Redact(r.natsURL), r.streamCf.Stream, r.streamCf.Prefix)
	}
	if r.nc, err = r.connect("authbench"); err != nil {
		return err
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		return err
	}
	if r.external {
		// The KV buckets have fixed names and may be a deployment's: keep
		// their replication as it is (OpenJetStream updates them to ours).
		r.streamCf.Replicas = r.replicasOf(ctx, "KV_"+eventstore.IndexBucket)
		for _, b := range []string{eventstore.IndexBucket, eventstore.SnapshotBucket, eventstore.ShadowBucket} {
			if _, err := r.js.KeyValue(ctx, b); errors.Is(err, jetstream.ErrBucketNotFound) {
				r.buckets = append(r.buckets, b) // OpenJetStream creates it: remove it at the end
			}
		}
	}
	r.store, err = r.openStore(ctx, r.streamCf)
	return err
}

// openStore creates a stream with the production settings (it also makes
// sure the two KV buckets exist) and remembers it for removal when it is
// one of this run's own.
func (r *runner) openStore(ctx context.Context, cfg eventstore.JetStreamConfig) (*eventstore.JetStream, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = r.streamCf.Replicas
	}
	st, err := eventstore.OpenJetStream(ctx, r.js, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Stream != "" && (r.external || cfg.Stream != contract.EventsStream) {
		r.mu.Lock()
		r.streams = append(r.streams, cfg.Stream)
		r.mu.Unlock()
	}
	return st, nil
}

// phaseStream is a stream of this run for one phase (projector, notifier).
func (r *runner) phaseStream(name string) eventstore.JetStreamConfig {
	return eventstore.JetStreamConfig{Prefix: "authbench" + name + r.suffix, Stream: "AUTHBENCH_" + strings.ToUpper(name+"_"+r.suffix)}
}

func (r *runner) replicasOf(ctx context.Context, stream string) int {
	st, err := r.js.Stream(ctx, stream)
	if err != nil {
		return 1
	}
	if n := st.CachedInfo().Config.Replicas; n > 0 {
		return n
	}
	return 1
}

func (r *runner) connect(name string) (*nats.Conn, error) {
	opts := natsutil.ClientOptions(name, r.opts.Logger)
	if r.external {
		auth, err := r.opts.NATSAuth.Options()
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
	}
	nc, err := nats.Connect(r.natsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", config.Redact(r.natsURL), err)
	}
	r.mu.Lock()
	r.conns = append(r.conns, nc)
	r.mu.Unlock()
	return nc, nil
}

// remember notes what the commands service created in the shared KV
// buckets, to remove it at the end (external NATS only).
func (r *runner) remember(nir, accountID string) {
	if !r.external {
		return
	}
	r.mu.Lock()
	r.nirKeys = append(r.nirKeys, r.keys.NIRIndexKey(nir))
	r.accounts = append(r.accounts, accountID)
	r.mu.Unlock()
}

// nextNIR is a new valid NIR for this run (never a real person's: the
// index key is keyed by this run's random secret anyway).
func (r *runner) nextNIR() string {
	return fmt.Sprintf("1%012d", 500_000_000_000+r.nirSeq.Add(1))
}

// database creates this run's database, the first time it is needed.
func (r *runner) database(ctx context.Context) (string, error) {
	if r.dbURL != "" {
		return r.dbURL, nil
	}
	admin := r.opts.DatabaseURL
	if admin == "" {
		if err := ping(ctx, devpg.DefaultLocalURL); err == nil {
			admin = devpg.DefaultLocalURL
		} else {
			r.progress("no Postgres on 127.0.0.1:5432 (%v): starting a private one", err)
			srv, err := devpg.StartPrivate(ctx, filepath.Join(r.tmp, "pg"), r.opts.Logger)
			if err != nil {
				return "", fmt.Errorf("no Postgres: give one with --database-url (AUTH_DATABASE_URL): %w", err)
			}
			r.private = srv
			admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", srv.Port)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, admin)
	if err != nil {
		return "", fmt.Errorf("postgres %s: %w", config.Redact(admin), err)
	}
	defer conn.Close(context.Background())
	name := "authbench_" + r.suffix
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s on %s (the bench works in a database of its own): %w", name, config.Redact(admin), err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	r.dbURL, r.dbName, r.dbAdmin = u.String(), name, admin
	r.progress("postgres %s: database %s (dropped at the end)", config.Redact(admin), name)
	return r.dbURL, nil
}

func ping(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.Ping(ctx)
}

// close removes everything the run created, whatever happened.
func (r *runner) close() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if r.js != nil {
		for _, s := range r.streams {
			if err := r.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				errs = append(errs, fmt.Errorf("delete stream %s: %w", s, err))
			}
		}
		if r.external {
			errs = append(errs, r.purgeKV(ctx))
			for _, b := range r.buckets {
				if err := r.js.DeleteKeyValue(ctx, b); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
					errs = append(errs, fmt.Errorf("delete bucket %s: %w", b, err))
				}
			}
		}
	}
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	if r.dbName != "" {
		if conn, err := pgx.Connect(ctx, r.dbAdmin); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", r.dbName, err))
		} else {
			if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+r.dbName+" WITH (FORCE)"); err != nil {
				errs = append(errs, fmt.Errorf("drop database %s: %w", r.dbName, err))
			}
			conn.Close(ctx)
		}
	}
	if r.private != nil {
		errs = append(errs, r.private.Stop())
	}
	if r.srv != nil {
		r.srv.Shutdown()
		r.srv.WaitForShutdown()
	}
	if r.tmp != "" {
		if err := os.RemoveAll(r.tmp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// purgeKV removes this run's keys from the shared buckets.
func (r *runner) purgeKV(ctx context.Context) error {
	var errs []error
	// Every NIR this run made may have a shadow state (unknown NIRs tried).
	var shadowKeys []string
	for i := range r.nirSeq.Load() {
		shadowKeys = append(shadowKeys, r.keys.NIRIndexKey(fmt.Sprintf("1%012d", 500_000_000_000+i+1)))
	}
	for _, b := range []struct {
		bucket string
		keys   []string
	}{{eventstore.IndexBucket, r.nirKeys}, {eventstore.SnapshotBucket, r.accounts}, {eventstore.ShadowBucket, shadowKeys}} {
		if len(b.keys) == 0 || slices.Contains(r.buckets, b.bucket) {
			continue
		}
		kv, err := r.js.KeyValue(ctx, b.bucket)
		if err != nil {
			errs = append(errs, fmt.Errorf("bucket %s: %w", b.bucket, err))
			continue
		}
		for _, k := range b.keys {
			if _, err := kv.Get(ctx, k); errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue // never written (most accounts have no snapshot): leave no marker
			}
			if err := kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				errs = append(errs, fmt.Errorf("purge %s from %s: %w", k, b.bucket, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// machine describes where the run ran.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %d GiB", (kb+512*1024)/(1024*1024))
		}
	}
	s := fmt.Sprintf("%s/%s, %d CPUs (GOMAXPROCS %d)%s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), mem)
	if model != "" {
		s += ", " + model
	}
	return s + ", " + runtime.Version()
}

// loadAvg1 is /proc/loadavg's 1-minute load average, 0 when unknown.
func loadAvg1() float64 {
	f, err := strconv.ParseFloat(loadAvg(), 64)
	if err != nil {
		return 0
	}
	return f
}

// loadAvg is the machine's 1-minute load average ("?" where unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// loadAvgs is /proc/loadavg's three load averages (1, 5 and 15 minutes).
func loadAvgs() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
