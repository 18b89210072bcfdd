package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// DurabilitySetup is one stream replication and server sync setting the
// durability comparison measures (docs/durability.md).
type DurabilitySetup struct {
	Name       string
	Replicas   int  // the stream's (and buckets') replicas: 1 on one server, 3 on a 3-node cluster
	SyncAlways bool // nats-server `jetstream { sync_interval: always }`; false: the default 2 min
}

// DurabilitySetups are the setups compared, in the report's order.
var DurabilitySetups = []DurabilitySetup{
	{Name: "R1, sync_interval 2m (default)", Replicas: 1},
	{Name: "R1, sync_interval always", Replicas: 1, SyncAlways: true},
	{Name: "R3, sync_interval 2m (default)", Replicas: 3},
	{Name: "R3, sync_interval always", Replicas: 3, SyncAlways: true},
}

// DurabilityOptions shape a durability comparison. Zero values take the
// append phase's defaults (64 writers, 1 s warm-up, 5 s timed).
type DurabilityOptions struct {
	Dir      string // where the servers keep their stores (required)
	Writers  int
	Warmup   time.Duration
	Time     time.Duration
	Setups   []DurabilitySetup // DurabilitySetups by default
	Progress func(format string, args ...any)
}

// DurabilityFigure is one setup's append figures.
type DurabilityFigure struct {
	Setup DurabilitySetup
	AppendFigures
}

// Durability runs the append phase's load (eventstore.JetStream.Append with
// the expected sequence, one account per writer) on each setup in turn, on
// in-process nats-servers: one for R1, three clustered over loopback routes
// for R3, each with a fresh store under Dir.
func Durability(ctx context.Context, o DurabilityOptions) ([]DurabilityFigure, error) {
	if o.Dir == "" {
		return nil, errors.New("durability: Dir is required")
	}
	if o.Writers == 0 {
		o.Writers = 64
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Time == 0 {
		o.Time = 5 * time.Second
	}
	if o.Setups == nil {
		o.Setups = DurabilitySetups
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	var out []DurabilityFigure
	for i, s := range o.Setups {
		t0 := time.Now()
		f, err := durabilityRun(ctx, filepath.Join(o.Dir, strconv.Itoa(i)), s, o)
		if err != nil {
			return out, fmt.Errorf("%s: %w", s.Name, err)
		}
		o.Progress("durability: %s: %.0f appends/s, p50 %s, p99 %s, %d conflicts (setup and run %s)", s.Name, f.PerS, f.P50, f.P99, f.Conflicts, time.Since(t0).Round(time.Millisecond))
		out = append(out, DurabilityFigure{Setup: s, AppendFigures: f})
	}
	return out, nil
}

func durabilityRun(ctx context.Context, dir string, s DurabilitySetup, o DurabilityOptions) (AppendFigures, error) {
	servers, err := startServers(dir, s.Replicas, s.SyncAlways)
	if err != nil {
		return AppendFigures{}, err
	}
	defer func() {
		for _, srv := range servers {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}()
	urls := make([]string, len(servers))
	for i, srv := range servers {
		urls[i] = srv.ClientURL()
	}
	nc, err := nats.Connect(strings.Join(urls, ","), natsutil.ClientOptions("authbench-durability", slog.New(slog.DiscardHandler))...)
	if err != nil {
		return AppendFigures{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return AppendFigures{}, err
	}
	// A new cluster elects its JetStream meta leader first: retry until
	// the stream can be created (an attempt before it may get no answer:
	// short attempts).
	var store *eventstore.JetStream
	deadline := time.Now().Add(30 * time.Second)
	for {
		octx, cancel := context.WithTimeout(ctx, time.Second)
		store, err = eventstore.OpenJetStream(octx, js, eventstore.JetStreamConfig{Replicas: s.Replicas})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return AppendFigures{}, fmt.Errorf("open the stream: %w", err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil { // polling, until the deadline
			return AppendFigures{}, err
		}
	}
	return appendLoad(ctx, store, o.Writers, o.Warmup, o.Time)
}

// startServers starts n nats-servers with JetStream on loopback; n > 1 are
// one cluster, every node routing to the others.
func startServers(dir string, n int, syncAlways bool) ([]*server.Server, error) {
	ports := make([]int, n)
	if n > 1 {
		for i := range ports {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			ports[i] = l.Addr().(*net.TCPAddr).Port
			_ = l.Close()
		}
	}
	var servers []*server.Server
	stop := func() {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	for i := range n {
		opts := &server.Options{ServerName: fmt.Sprintf("authbench-%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), SyncAlways: syncAlways, NoLog: true, NoSigs: true}
		if n > 1 {
			var routes []string
			for j, p := range ports {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
				}
			}
			opts.Cluster = server.ClusterOpts{Name: "authbench", Host: "127.0.0.1", Port: ports[i]}
			opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			stop()
			return nil, err
		}
		srv.Start()
		servers = append(servers, srv)
	}
	for _, srv := range servers {
		if !srv.ReadyForConnections(10 * time.Second) {
			stop()
			return nil, fmt.Errorf("nats-server %s not ready", srv.Name())
		}
	}
	return servers, nil
}
