// Package histrun runs a randomized history against the commands service
// on an embedded nats-server (commandstest), records every request and
// reply, and hands the history and the stream to histcheck.Check.
//
// Several clients share many accounts and send every kind of command, with
// right and wrong passwords and codes, retries that reuse a request_id with
// the same body, and the service's clock moved forward in random steps
// between rounds. Faults (Faults) are injected at random between rounds;
// the requests they break are of unknown outcome, which the checker
// accepts either way but never contradicted. See docs/history-check.md.
package histrun

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/histcheck"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// Config sizes a run. Zero values take the defaults.
type Config struct {
	Clients      int           // concurrent clients (8)
	Accounts     int           // accounts shared by the clients (40)
	OpsPerRound  int           // steps per client per round (2; a step may send a few requests)
	Duration     time.Duration // wall-clock budget for the rounds (10 s)
	MaxRounds    int           // 0: as many as the budget allows
	Instances    int           // service instances (2)
	Seed         uint64        // 0: a random seed (logged)
	RetryRate    float64       // chance a request is sent again as a retry (0.15)
	FaultRate    float64       // chance of a fault between rounds (0.1)
	Faults       Faults        // nil: RestartServer
	ReplyTimeout time.Duration // how long a client waits for a reply (5 s)
	// Partitions of the events (AUTH_PARTITIONS; 0 or 1: the one stream
	// AUTH_EVENTS): the service runs over that many streams, and the
	// checker reads them all.
	Partitions int
}

func (c *Config) defaults() {
	if c.Clients == 0 {
		c.Clients = 8
	}
	if c.Accounts == 0 {
		c.Accounts = 40
	}
	if c.OpsPerRound == 0 {
		c.OpsPerRound = 2
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Instances == 0 {
		c.Instances = 2
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.RetryRate == 0 {
		c.RetryRate = 0.15
	}
	if c.FaultRate == 0 {
		c.FaultRate = 0.1
	}
	if c.ReplyTimeout == 0 {
		c.ReplyTimeout = 5 * time.Second
	}
}

// Faults break the system between rounds. Inject runs on the test's
// goroutine while a round's requests are in flight; Heal
// runs between two later rounds and must leave the system able to answer.
// The runner calls Heal before it reads the stream at the end.
type Faults interface {
	Name() string
	Inject(r *Run) error
	Heal(r *Run) error
}

// RestartServer restarts the embedded nats-server (same port, same store)
// in the middle of a round: the requests in flight get no reply, or
// `unavailable`, and the clients reconnect.
type RestartServer struct{}

func (RestartServer) Name() string { return "nats-server restart" }

func (RestartServer) Inject(r *Run) error {
	r.H.Server = natsutil.RestartTestServer(r.TB, r.H.Server)
	// The restarted server stops before the harness's own schema check:
	// check while it still runs (CheckSchemas runs once).
	r.TB.Cleanup(r.H.CheckSchemas)
	return nil
}

func (RestartServer) Heal(r *Run) error { return r.WaitAnswering(30 * time.Second) }

// Run is one run in progress.
type Run struct {
	TB  testing.TB
	H   *commandstest.Harness
	Cfg Config

	hist     histcheck.History
	accounts []*account
	clockMu  sync.RWMutex // held for reading by requests, for writing by clock moves
}

// Result is a run's figures and the checker's report.
type Result struct {
	Seed    uint64
	Rounds  int
	Faults  int
	Elapsed time.Duration
	Report  histcheck.Report
	Ops     []histcheck.Op
}

func (r Result) String() string {
	return fmt.Sprintf("seed %d: %d rounds, %d faults, %s: %s", r.Seed, r.Rounds, r.Faults, r.Elapsed.Round(time.Millisecond), r.Report)
}

// Execute runs a history and checks it.
func Execute(tb testing.TB, cfg Config) Result {
	tb.Helper()
	cfg.defaults()
	if cfg.Faults == nil {
		cfg.Faults = RestartServer{}
	}
	start := time.Now()
	r := &Run{TB: tb, Cfg: cfg, H: commandstest.Start(tb, commandstest.Options{Instances: cfg.Instances, Partitions: cfg.Partitions})}
	rng := rand.New(rand.NewPCG(cfg.Seed, 14))
	for i := range cfg.Accounts {
		r.accounts = append(r.accounts, &account{
			nir:      fmt.Sprintf("1%012d", (cfg.Seed%1_000_000)*1000+uint64(i)),
			email:    fmt.Sprintf("holder%d@example.fr", i),
			password: newPassword(rng),
			phone:    newKey(),
			device:   fmt.Sprintf("phone-%d-%d", cfg.Seed%1_000_000, i),
		})
	}
	res := Result{Seed: cfg.Seed}
	deadline := start.Add(cfg.Duration)
	injected := false
	for round := 0; time.Now().Before(deadline) && (cfg.MaxRounds == 0 || round < cfg.MaxRounds); round++ {
		// The first fault comes in round 2, so that every run has one.
		inject := !injected && (round == 2 && res.Faults == 0 || round > 2 && rng.Float64() < cfg.FaultRate)
		var wg sync.WaitGroup
		for c := range cfg.Clients {
			seed := rng.Uint64()
			wg.Go(func() { r.client(c, round, rand.New(rand.NewPCG(seed, uint64(c)))) })
		}
		if inject {
			// On the test's goroutine (a fault may fail the test), while
			// the clients' requests are in flight.
			if err := cfg.Faults.Inject(r); err != nil {
				tb.Errorf("inject %s: %v", cfg.Faults.Name(), err)
			}
			injected = true
			res.Faults++
		}
		wg.Wait()
		if injected && (rng.Float64() < 0.5) {
			if err := cfg.Faults.Heal(r); err != nil {
				tb.Fatalf("heal %s: %v", cfg.Faults.Name(), err)
			}
			injected = false
		}
		r.advance(rng)
		res.Rounds++
	}
	if injected {
		if err := cfg.Faults.Heal(r); err != nil {
			tb.Fatalf("heal %s: %v", cfg.Faults.Name(), err)
		}
	}
	res.Ops = r.hist.Ops()
	histories := r.readStream()
	res.Report = histcheck.Check(commandstest.Policy(), res.Ops, histories)
	res.Elapsed = time.Since(start)
	return res
}

// clock steps between rounds: mostly short, sometimes across a rule's
// boundary (a code's 15 minutes, a block, the quota hour, 48 hours).
var steps = []time.Duration{
	time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
	14*time.Minute + 59*time.Second, 15 * time.Minute, 16 * time.Minute, 31 * time.Minute,
	59*time.Minute + 59*time.Second, time.Hour, 2 * time.Hour, 47*time.Hour + 59*time.Minute, 48 * time.Hour,
}

func (r *Run) advance(rng *rand.Rand) {
	d := steps[rng.IntN(6)]
	if rng.Float64() < 0.12 {
		d = steps[rng.IntN(len(steps))]
	}
	r.clockMu.Lock()
	r.H.Clock.Advance(d)
	r.clockMu.Unlock()
}

// WaitAnswering waits until the service answers a request again (one it
// refuses at once), polling with short requests: no sleep.
func (r *Run) WaitAnswering(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := r.H.NC.Request(contract.Default.Command(contract.CmdLoginPassword), []byte(`{}`), 200*time.Millisecond); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the service did not answer within %s", limit)
		}
	}
}

// readStream reads the whole events stream (every partition's), in order,
// by account: an account's events are all in one partition's stream, in
// its order.
func (r *Run) readStream() map[string][]events.Envelope {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	streams := []string{r.H.Store.StreamName()}
	if r.H.Parts != nil {
		streams = r.H.Parts.Layout().Streams()
	}
	out := map[string][]events.Envelope{}
	for _, name := range streams {
		r.readOne(ctx, name, out)
	}
	return out
}

func (r *Run) readOne(ctx context.Context, name string, out map[string][]events.Envelope) {
	stream, err := r.H.JS.Stream(ctx, name)
	if err != nil {
		r.TB.Fatalf("open stream %s: %v", name, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		r.TB.Fatalf("stream info: %v", err)
	}
	if info.State.Msgs == 0 {
		return
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			r.TB.Fatalf("read event %d of %s: %v", seq, name, err)
		}
		env, err := events.Unmarshal(msg.Data)
		if err != nil {
			r.TB.Fatalf("decode event %d on %s: %v", seq, msg.Subject, err)
		}
		out[env.AccountID] = append(out[env.AccountID], env)
	}
}
