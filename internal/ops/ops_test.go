package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/ops/opstest"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	res, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestHealthzAndReadyz(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, ns)
	s := ops.New(ops.Config{Component: "commands", NATS: []*nats.Conn{nc}, DevClock: true})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	if code, body := get(t, srv, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := get(t, srv, "/readyz")
	if code != http.StatusOK || !strings.HasPrefix(body, "ready\n") || !strings.Contains(body, "dev clock on") {
		t.Fatalf("/readyz while connected: %d %q", code, body)
	}

	nc.Close()
	code, body = get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "nats not connected") {
		t.Fatalf("/readyz with a closed connection: %d %q", code, body)
	}
	// Liveness does not depend on NATS.
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with a closed connection: %d", code)
	}
}

func TestReadyzPingsPostgres(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, ns)
	var down atomic.Bool // set by the test, read by the handler
	s := ops.New(ops.Config{Component: "projector", NATS: []*nats.Conn{nc},
		Ping: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the ping has no deadline")
			}
			if down.Load() {
				return errors.New("connection refused by 10.0.0.7 for user secret")
			}
			return nil
		}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	down.Store(true)
	ops.ExpireChecks(s) // as after ops.CacheFor
	code, body := get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable || body != "not ready: postgres ping failed\n" {
		t.Fatalf("/readyz with Postgres down: %d %q", code, body)
	}
}

// Until started, the page says the component is starting (the projector
// migrating its read models), whatever else holds; liveness answers.
func TestReadyzSaysStartingUntilStarted(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	s := ops.New(ops.Config{Component: "projector", NATS: []*nats.Conn{natsutil.Connect(t, ns)}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	started := s.Starting("migrating the read models")
	if code, body := get(t, srv, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: starting: migrating the read models\n" {
		t.Fatalf("/readyz while starting: %d %q", code, body)
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while starting: %d", code)
	}
	started()
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz once started: %d %q", code, body)
	}
}

// The events stream must answer a stream info: before it exists the page
// says so, once created it is ready.
func TestReadyzChecksTheEventsStream(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := ops.New(ops.Config{Component: "commands", NATS: []*nats.Conn{nc}, Stream: ops.StreamCheck(js, contract.EventsStream)})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	if code, body := get(t, srv, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: events stream unreachable\n" {
		t.Fatalf("/readyz without the stream: %d %q", code, body)
	}
	if _, err := eventstore.OpenJetStream(context.Background(), js, eventstore.JetStreamConfig{}); err != nil {
		t.Fatal(err)
	}
	ops.ExpireChecks(s)
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the stream: %d %q", code, body)
	}
}

// A consumer is ready while caught up, or while its oldest event not yet
// handled is within the bound; past it, or when its lag cannot be read,
// the page says how far behind (events, age, bound) and never why the
// read failed. The lag is also a metric, read at each scrape.
func TestReadyzBoundsAConsumersLag(t *testing.T) {
	var mu sync.Mutex
	lag, lagErr := ops.Lag{}, error(nil)
	set := func(l ops.Lag, err error) { mu.Lock(); lag, lagErr = l, err; mu.Unlock() }
	s := ops.New(ops.Config{Component: "notifier", MaxLag: 30 * time.Second, Consumers: []ops.Consumer{{Name: "notifier",
		Lag: func(ctx context.Context) (ops.Lag, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the lag read has no deadline")
			}
			mu.Lock()
			defer mu.Unlock()
			return lag, lagErr
		}}}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, c := range []struct {
		name string
		lag  ops.Lag
		err  error
		want string // "" for ready
	}{
		{name: "caught_up", lag: ops.Lag{}},
		{name: "behind_within_the_bound", lag: ops.Lag{Events: 40, Seconds: 29.9}},
		{name: "behind_past_the_bound", lag: ops.Lag{Events: 40, Seconds: 95.4},
			want: "not ready: notifier behind: 40 events, the oldest 1m35s old (bound 30s, AUTH_READY_MAX_LAG)\n"},
		{name: "lag_unreadable", err: errors.New("nats: consumer not found on 10.0.0.7"),
			want: "not ready: notifier lag unknown: its position or the stream could not be read\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			set(c.lag, c.err)
			ops.ExpireChecks(s)
			code, body := get(t, srv, "/readyz")
			if c.want == "" && code != http.StatusOK || c.want != "" && (code != http.StatusServiceUnavailable || body != c.want) {
				t.Fatalf("/readyz: %d %q, want %q", code, body, c.want)
			}
			if c.err != nil {
				if opstest.Families(t, s.Registry)["auth_consumer_lag_events"] {
					t.Error("an unreadable lag was shown as a value")
				}
				return
			}
			if got := opstest.Value(t, s.Registry, "auth_consumer_lag_events", "consumer", "notifier"); got != float64(c.lag.Events) {
				t.Errorf("auth_consumer_lag_events = %v, want %d", got, c.lag.Events)
			}
			if got := opstest.Value(t, s.Registry, "auth_consumer_lag_seconds", "consumer", "notifier"); got != c.lag.Seconds {
				t.Errorf("auth_consumer_lag_seconds = %v, want %v", got, c.lag.Seconds)
			}
		})
	}
}

// Probes and scrapes share the checks that ask another server: 50
// concurrent /readyz make one round (one ping, one stream info, one lag
// read), the 49 that come while it runs waiting for it; /metrics within
// ops.CacheFor reads the same lag; after it, the next probe asks again.
func TestReadyzSharesOneCheckRound(t *testing.T) {
	var pings, streams, lags atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	var clock atomic.Int64 // nanoseconds since t0
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	s := ops.New(ops.Config{Component: "projector",
		Ping: func(context.Context) error {
			pings.Add(1)
			<-release // whatever the timeout: the test lets it answer
			return nil
		},
		Stream:    func(context.Context) error { streams.Add(1); return nil },
		Consumers: []ops.Consumer{{Name: "projector", Lag: func(context.Context) (ops.Lag, error) { lags.Add(1); return ops.Lag{Events: 3, Seconds: 0.5}, nil }}},
	})
	ops.SetClock(s, func() time.Time { return t0.Add(time.Duration(clock.Load())) })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	defer let() // before srv.Close, which waits for the probes, if the test fails first

	const probes = 50
	codes := make(chan int, probes)
	for range probes {
		go func() {
			res, err := srv.Client().Get(srv.URL + "/readyz")
			if err != nil {
				t.Error(err)
				codes <- 0
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	testwait.For(t, "49 probes waiting for the ping in flight", 10*time.Second, func() bool {
		return ops.WaitingForPing(s) == probes-1
	})
	let()
	for range probes {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("/readyz: %d", code)
		}
	}
	if pings.Load() != 1 || streams.Load() != 1 || lags.Load() != 1 {
		t.Fatalf("%d concurrent probes made %d pings, %d stream infos, %d lag reads; want one round", probes, pings.Load(), streams.Load(), lags.Load())
	}

	var wg sync.WaitGroup
	for range probes {
		wg.Go(func() {
			if code, _ := get(t, srv, "/metrics"); code != http.StatusOK {
				t.Errorf("/metrics: %d", code)
			}
		})
	}
	wg.Wait()
	if got := opstest.Value(t, s.Registry, "auth_consumer_lag_events", "consumer", "projector"); got != 3 || lags.Load() != 1 {
		t.Fatalf("scrapes within ops.CacheFor: lag %v, %d lag reads; want 3 from the shared read", got, lags.Load())
	}

	clock.Add(int64(ops.CacheFor))
	if code, _ := get(t, srv, "/readyz"); code != http.StatusOK || pings.Load() != 2 || streams.Load() != 2 || lags.Load() != 2 {
		t.Fatalf("after ops.CacheFor: %d, %d pings, %d stream infos, %d lag reads; want a second round", code, pings.Load(), streams.Load(), lags.Load())
	}
}

// nats.go counts the reconnects; the page shows them by connection name,
// and whether each connection is connected now.
func TestNATSReconnectsAreCountedByConnection(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	log := slog.New(slog.DiscardHandler)
	nc, err := nats.Connect(ns.ClientURL(), natsutil.ClientOptions("auth-commands", log)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s := ops.New(ops.Config{Component: "commands", NATS: []*nats.Conn{nc}})
	reconnects := func() float64 {
		return opstest.Value(t, s.Registry, "auth_nats_reconnects_total", "conn", "auth-commands")
	}
	if reconnects() != 0 || opstest.Value(t, s.Registry, "auth_nats_connected", "conn", "auth-commands") != 1 {
		t.Fatal("a fresh connection shows a reconnect or is not connected")
	}
	for i := 1; i <= 2; i++ {
		ns = natsutil.RestartTestServer(t, ns)
		testwait.For(t, "the reconnect counted", 10*time.Second, func() bool { return reconnects() == float64(i) })
	}
	ns.Shutdown()
	testwait.For(t, "the lost connection shown", 10*time.Second, func() bool {
		return opstest.Value(t, s.Registry, "auth_nats_connected", "conn", "auth-commands") == 0
	})
}

// The commands service counts its commands, the facts it records (by
// type, lockouts and codes by kind), its lost races and its hashing pool,
// and no label value ever holds a NIR, an email, an account id or a token.
func TestCommandMetricsFollowTheDecisions(t *testing.T) {
	reg := ops.NewRegistry()
	m := ops.NewCommandMetrics(reg)
	h := commandstest.Start(t, commandstest.Options{Instances: 2,
		Configure: func(c *commands.Config) { c.Observe, c.Metrics = m.Observe, m }})
	val := func(name string, labels ...string) float64 { return opstest.Value(t, reg, name, labels...) }
	const nir, email, password = "1840275123456", "jeanne.martin@exemple.fr", "cheval-agrafe-batterie"
	accountID := h.Register(nir, email, password)
	commandstest.WantError(t, h.Req(contract.CmdAccountRegister, commandstest.Obj{"nir": nir, "email": email,
		"password": password, "email_validated": true, "affiliation": "active", "channel": "backoffice"}), "account_exists")
	if val("auth_commands_total", "subject", "account.register", "outcome", contract.StatusRegistered) != 1 ||
		val("auth_commands_total", "subject", "account.register", "outcome", "account_exists") != 1 ||
		val("auth_command_duration_seconds", "subject", "account.register") != 2 ||
		val("auth_events_appended_total", "type", "account.registered") != 1 {
		t.Error("the registrations were not counted by subject and outcome")
	}

	// A login: one code issued; the code typed wrong three times blocks.
	session := h.Login(accountID, nir, password)
	loginID := h.StartLogin(nir, password)
	for range 3 {
		h.Req(contract.CmdLoginOTPVerify, commandstest.Obj{"login_id": loginID, "code": "000000"})
	}
	if got := val("auth_codes_issued_total", "kind", "login"); got != 2 {
		t.Errorf("login codes issued: %v, want 2", got)
	}
	if got := val("auth_lockouts_total", "kind", "otp"); got != 1 {
		t.Errorf("otp lockouts: %v, want 1", got)
	}
	// A reset link; three wrong passwords on an unknown NIR block it too
	// (its shadow state), appending nothing.
	if rep := h.Req(contract.CmdPasswordResetRequest, commandstest.Obj{"nir": nir}); !rep.OK {
		t.Fatalf("reset request: %+v", rep.Error)
	}
	const unknownNIR = "2690549588157"
	appended := val("auth_events_appended_total", "type", "login.password_failed")
	for range 3 {
		h.Req(contract.CmdLoginPassword, commandstest.Obj{"nir": unknownNIR, "password": "pas-le-bon-mot"})
	}
	if val("auth_codes_issued_total", "kind", "password_reset") != 1 || val("auth_lockouts_total", "kind", "password") != 1 ||
		val("auth_events_appended_total", "type", "login.password_failed") != appended {
		t.Error("the reset link, or the unknown NIR's block, was not counted, or counted as appended")
	}

	// Lost races, made deterministic with two instances' caches: instance
	// 0 sees the account "active"; instance 1 sets it "pending"; instance 0
	// setting "active" decides "no change" on its stale cache, finds the
	// stream moved and decides again (stale). Instance 1, whose cache is
	// now behind, sets "none": its append's expected sequence is stale
	// (a conflict), and it decides again on the reloaded state.
	set := func(instance int, affiliation string) {
		t.Helper()
		var rep contract.AnyReply
		if err := json.Unmarshal(h.Handle(instance, contract.CmdAccountSetAffiliation,
			[]byte(`{"account_id":"`+accountID+`","affiliation":"`+affiliation+`"}`)), &rep); err != nil || !rep.OK {
			t.Fatalf("set_affiliation %s on instance %d: %+v %v", affiliation, instance, rep.Error, err)
		}
	}
	// (The requests above went through the queue group, to either
	// instance: they may have raced already; the deltas are exact.)
	set(0, "active")
	set(1, "active")
	stale, conflicts, conflictRetries := val("auth_decision_retries_total", "reason", "stale"),
		val("auth_append_conflicts_total", "store", "account"), val("auth_decision_retries_total", "reason", "conflict")
	set(1, "pending")
	set(0, "active")
	if got := val("auth_decision_retries_total", "reason", "stale") - stale; got != 1 {
		t.Errorf("stale retries: %v, want 1", got)
	}
	set(1, "none")
	if c, r := val("auth_append_conflicts_total", "store", "account")-conflicts,
		val("auth_decision_retries_total", "reason", "conflict")-conflictRetries; c != 1 || r != 1 {
		t.Errorf("conflicts %v, conflict retries %v; want 1 and 1", c, r)
	}

	// Every password check waited for a worker, and none is left running.
	if waits := val("auth_hash_queue_wait_seconds"); waits < 6 {
		t.Errorf("%v waits for a hashing worker; want one per hash, at least 6", waits)
	}
	if got := val("auth_hashes_in_flight"); got != 0 {
		t.Errorf("%v hashes in flight after the last reply", got)
	}

	// The caches: each instance's bound (the two share the metrics), the
	// account in the caches, the unknown NIR's shadow state.
	if got := val("auth_cache_max_entries", "cache", commands.CacheAccounts); got != 100_000 {
		t.Errorf("accounts cache bound %v, want 100000", got)
	}
	if a, s := val("auth_cache_entries", "cache", commands.CacheAccounts), val("auth_cache_entries", "cache", commands.CacheShadows); a < 1 || a > 2 || s < 1 || s > 2 {
		t.Errorf("cache entries: %v accounts, %v shadows; want 1 or 2 each (one per instance that met them)", a, s)
	}

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	code, body := get(t, srv, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "go_goroutines ") || !strings.Contains(body, "process_start_time_seconds ") {
		t.Fatalf("/metrics: %d, without the runtime's metrics", code)
	}
	opstest.CheckLabels(t, reg, nir, "1 84 02 75 123 456", unknownNIR, email, accountID, session, loginID, password)
}
