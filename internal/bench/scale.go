package bench

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/projector"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// ScaleOptions configure a scale run (`authctl bench --scale N`,
// docs/scale.md "Measured").
type ScaleOptions struct {
	// Accounts is N, the accounts imported (at least Baseline + 1).
	Accounts int
	// Baseline is the small size the cold logins at N are compared with;
	// default 10,000.
	Baseline int
	// NATSServer is the nats-server executable, run as a process of its
	// own so that its memory and its restart are its own; ServerEnv is
	// added to its environment (tests run their own binary as the server).
	NATSServer string
	ServerEnv  []string
	// Dir holds the server's store (and is removed at the end); empty: a
	// temporary directory.
	Dir string
	// DatabaseURL is the Postgres server for the projector's catch-up
	// (a database of the run's own is created and dropped); empty: the
	// machine's, or a private one, as Options.DatabaseURL.
	DatabaseURL string
	// Partitions is AUTH_PARTITIONS (0 or 1: one stream).
	Partitions int
	// Logins is the number of cold logins timed at each size; default 500.
	Logins int
	// Batch and Concurrency are the import's rows per account.import_batch
	// and batches in flight, as `authctl account import`'s defaults (500, 4).
	Batch, Concurrency int
	// SkipProjector leaves the projector's catch-up out.
	SkipProjector bool
	// Uncompressed creates the stream and the buckets without S2
	// (eventstore.JetStreamConfig.Uncompressed): a cold read then costs a
	// block's read from disk, not its decompression (docs/scale.md,
	// "Measured": the hypothesis it tests).
	Uncompressed bool
	// DuplicateWindow is the events stream's Nats-Msg-Id window
	// (eventstore.JetStreamConfig.DuplicateWindow); 0: the service's
	// default.
	DuplicateWindow time.Duration
	// SettleIdle is how long the server is left idle before its settled
	// heap is read (ScalePoint.SettledHeapMB); 0: the longer of the
	// stream's duplicate window and the server's per-block subject state
	// expiry (2 minutes), plus a margin; negative: no settled heap.
	SettleIdle time.Duration
	// ProfileDir, if set, receives the server's heap profiles at N (go tool
	// pprof), each taken with a heap reading: nats-heap-<N>-import.pb.gz
	// just after the import, -settled once settled, -logins after the
	// restart and the logins, -restart once settled again.
	ProfileDir string
	Progress   io.Writer
	Logger     *slog.Logger
}

// ScalePoint is what was measured once Accounts were in the stream.
type ScalePoint struct {
	Accounts      int     `json:"accounts"`
	DiskBytes     int64   `json:"disk_bytes"`      // the server's store directory, allocated blocks
	ServerRSSMB   float64 `json:"server_rss_mb"`   // nats-server, just after the import
	HeapMB        float64 `json:"server_heap_mb"`  // nats-server's live Go heap after a GC, just after the import
	StartedRSSMB  float64 `json:"started_rss_mb"`  // nats-server, just after the kill -9 restart
	RestartRSSMB  float64 `json:"restart_rss_mb"`  // nats-server, after the kill -9 restart and the logins
	RestartHeapMB float64 `json:"restart_heap_mb"` // its live heap after a GC, then
	// StoppedDiskBytes is the store directory after the clean stop: the
	// blocks and each stream's full-state file (index.db, with every
	// subject), which the server writes at a clean stop and, below
	// 1,000,000 subjects per stream, every 2 to 2.5 minutes.
	StoppedDiskBytes int64 `json:"stopped_disk_bytes"`
	// KillWritesStartS: start to /healthz 200 after a kill -9 that
	// follows the import (and the settled heap's wait), before any
	// clean stop at this size; KillWritesRSSMB the RSS just after it.
	KillWritesStartS float64 `json:"kill_after_import_start_s"`
	KillWritesRSSMB  float64 `json:"kill_after_import_rss_mb"`
	// The server's CPU time (user and system) from its start to /healthz
	// 200, for each start: the work of the recovery, which the machine's
	// load does not stretch as it does the wall time; above the wall
	// time, the recovery ran on several cores.
	CleanStartCPUS float64 `json:"clean_start_cpu_s"`
	KillStartCPUS  float64 `json:"kill_start_cpu_s"`
	KillWritesCPUS float64 `json:"kill_after_import_start_cpu_s"`
	CleanStopS     float64 `json:"clean_stop_s"`    // SIGTERM to exit
	CleanStartS    float64 `json:"clean_start_s"`   // start to /healthz 200, after a clean stop
	KillStartS     float64 `json:"kill_start_s"`    // start to /healthz 200, after kill -9 (following the clean start: index.db current)
	LoginP50Ms     float64 `json:"login_p50_ms"`    // cold login.password, commands' cache empty
	LoginP99Ms     float64 `json:"login_p99_ms"`    //
	CommandsRSSMB  float64 `json:"commands_rss_mb"` // this process (commands and the bench's clients) after the logins
	// The settled heaps (0 when SettleIdle < 0): nats-server's live heap
	// once it has been idle for the duplicate window and the per-block
	// subject state expiry, and stable; after the import, and after the
	// restart and the logins. What it holds then is what each account
	// costs for good, not what a burst of writes or reads left behind.
	SettledHeapMB        float64      `json:"settled_heap_mb"`
	SettleS              float64      `json:"settle_s"` // the wait for it, from the end of the import
	RestartSettledHeapMB float64      `json:"restart_settled_heap_mb"`
	Settled              bool         `json:"settled"`                // both readings were stable (else the last reading)
	HeapProfile          string       `json:"heap_profile,omitempty"` // the settled heaps' profiles (ProfileDir)
	RestartHeapProfile   string       `json:"restart_heap_profile,omitempty"`
	ImportHeapProfile    string       `json:"import_heap_profile,omitempty"` // and those of HeapMB and RestartHeapMB
	LoginsHeapProfile    string       `json:"logins_heap_profile,omitempty"`
	Stores               []StoreState `json:"stores"` // every stream and bucket after the import
}

// ScaleResult holds a scale run's figures. Slopes are per account between
// the baseline and N.
type ScaleResult struct {
	Machine           string     `json:"machine"`
	Partitions        int        `json:"partitions"`
	Compression       string     `json:"compression"`        // the stream's blocks, as the server has them: "s2" (production) or "none" (--uncompressed)
	DuplicateWindowS  float64    `json:"duplicate_window_s"` // the events stream's, as the server has it
	Hash              string     `json:"hash"`
	ImportPerS        float64    `json:"import_per_s"` // accounts/s, the part after the baseline
	ImportS           float64    `json:"import_s"`     // the whole import
	Baseline          ScalePoint `json:"baseline"`
	AtN               ScalePoint `json:"at_n"`
	DiskPerAccount    float64    `json:"disk_bytes_per_account"`
	RSSPerAccount     float64    `json:"server_bytes_per_account"`               // after the import
	RestartRSSPerAcc  float64    `json:"restart_bytes_per_account"`              // after the restart
	HeapPerAccount    float64    `json:"heap_bytes_per_account"`                 // live heap after the restart and the logins
	SettledPerAccount float64    `json:"settled_heap_bytes_per_account"`         // settled live heap after the import
	RestartSettledPA  float64    `json:"restart_settled_heap_bytes_per_account"` // settled live heap after the restart and the logins
	KillStartPerAccUs float64    `json:"kill_start_us_per_account"`              // restart after kill -9
	KillWritesPerAcUs float64    `json:"kill_after_import_start_us_per_account"`
	StoppedDiskPerAcc float64    `json:"stopped_disk_bytes_per_account"`
	CleanStartPerAcUs float64    `json:"clean_start_us_per_account"` // restart after a clean stop
	LoginP50Ratio     float64    `json:"login_p50_ratio"`
	LoginP99Ratio     float64    `json:"login_p99_ratio"`
	ProjectorEvents   uint64     `json:"projector_events"`
	ProjectorS        float64    `json:"projector_s"`
	ProjectorPerS     float64    `json:"projector_events_per_s"`
	Elapsed           float64    `json:"elapsed_s"`
	Load              [2]string  `json:"load"` // 1-minute load average at the start and the end
}

// scaleRun is a scale run's state.
type scaleRun struct {
	*runner
	o        ScaleOptions
	cmd      *exec.Cmd
	exited   chan struct{}
	port     int
	mport    int
	pport    int
	storeDir string
	pstore   *eventstore.Partitioned
	stopCmds func()
	policy   domain.Policy
	phc      string
	window   time.Duration // the events stream's duplicate window
	lastIO   time.Time     // the end of the last import or logins
	startCPU float64       // the server's CPU time (user and system) at its last start's /healthz 200
}

// Scale imports o.Accounts accounts into a nats-server process (the
// production stream settings, o.Partitions partitions) and measures, at
// o.Baseline and at N: disk, server memory, restart (clean and kill -9),
// and cold logins; then the import rate and the projector's catch-up on
// a fresh database. Every imported row carries one argon2id hash with the
// bench's cheap parameters (m=256 KiB, t=1, p=1), and the commands policy
// has the same ones, so a login verifies in about a millisecond and never
// rehashes: the login times are the service's, not argon2id's.
func Scale(ctx context.Context, o ScaleOptions) (res ScaleResult, err error) {
	start := time.Now()
	if o.Baseline <= 0 {
		o.Baseline = 10_000
	}
	if o.Accounts <= o.Baseline {
		return res, fmt.Errorf("bench scale: %d accounts, want more than the baseline %d", o.Accounts, o.Baseline)
	}
	if o.Logins <= 0 {
		o.Logins = 500
	}
	o.Logins = min(o.Logins, o.Baseline)
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	res.Machine, res.Partitions, res.Load[0] = machine(), max(o.Partitions, 1), loadAvg()
	res.Hash = fmt.Sprintf("argon2id m=%d KiB, t=%d, p=%d (the policy's too)", cheapArgon2.Memory, cheapArgon2.Time, cheapArgon2.Threads)
	s := &scaleRun{runner: &runner{opts: Options{DatabaseURL: o.DatabaseURL, Progress: o.Progress, Logger: o.Logger}, res: &Result{}}, o: o}
	defer func() {
		s.stopAll()
		if s.cmd != nil {
			select {
			case <-s.exited:
			default:
				if _, serr := s.stopServer(syscall.SIGTERM); serr != nil && err == nil {
					err = serr
				}
			}
		}
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
		res.Elapsed, res.Load[1] = time.Since(start).Seconds(), loadAvg()
	}()
	master := make([]byte, secrets.KeySize)
	crand.Read(master)
	if s.keys, err = secrets.NewKeys(master); err != nil {
		return res, err
	}
	s.suffix = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if s.tmp, err = os.MkdirTemp(o.Dir, "authscale-"); err != nil {
		return res, err
	}
	s.storeDir = filepath.Join(s.tmp, "nats")
	s.policy = domain.SeedPolicy()
	s.policy.Argon2 = cheapArgon2
	s.phc = secrets.HashPassword(benchPassword, cheapArgon2)
	if s.port, err = freePort(); err != nil {
		return res, err
	}
	if s.mport, err = freePort(); err != nil {
		return res, err
	}
	if s.pport, err = freePort(); err != nil {
		return res, err
	}
	if _, err := s.startServer(ctx); err != nil {
		return res, err
	}
	if err := s.up(ctx); err != nil {
		return res, err
	}
	// The compression the server has, not the one asked for: the report
	// says what was measured.
	st, err := s.js.Stream(ctx, s.pstore.Partitions()[0].StreamName())
	if err != nil {
		return res, fmt.Errorf("scale: stream info: %w", err)
	}
	res.Compression = strings.ToLower(st.CachedInfo().Config.Compression.String())
	s.window = st.CachedInfo().Config.Duplicates
	res.DuplicateWindowS = s.window.Seconds()

	t0 := time.Now()
	if err := s.importRange(ctx, 0, o.Baseline); err != nil {
		return res, err
	}
	baseTook := time.Since(t0)
	if res.Baseline, err = s.measure(ctx, o.Baseline); err != nil {
		return res, err
	}
	t1 := time.Now()
	if err := s.importRange(ctx, o.Baseline, o.Accounts); err != nil {
		return res, err
	}
	rest := time.Since(t1)
	res.ImportS = (baseTook + rest).Seconds()
	res.ImportPerS = float64(o.Accounts-o.Baseline) / rest.Seconds()
	s.progress("scale: %d accounts imported in %s (%.0f accounts/s after the baseline)", o.Accounts, (baseTook + rest).Round(time.Millisecond), res.ImportPerS)
	if res.AtN, err = s.measure(ctx, o.Accounts); err != nil {
		return res, err
	}
	d := float64(o.Accounts - o.Baseline)
	b, n := res.Baseline, res.AtN
	res.DiskPerAccount = float64(n.DiskBytes-b.DiskBytes) / d
	res.RSSPerAccount = (n.ServerRSSMB - b.ServerRSSMB) * (1 << 20) / d
	res.RestartRSSPerAcc = (n.RestartRSSMB - b.RestartRSSMB) * (1 << 20) / d
	res.HeapPerAccount = (n.RestartHeapMB - b.RestartHeapMB) * (1 << 20) / d
	res.SettledPerAccount = (n.SettledHeapMB - b.SettledHeapMB) * (1 << 20) / d
	res.RestartSettledPA = (n.RestartSettledHeapMB - b.RestartSettledHeapMB) * (1 << 20) / d
	res.KillStartPerAccUs = (n.KillStartS - b.KillStartS) * 1e6 / d
	res.KillWritesPerAcUs = (n.KillWritesStartS - b.KillWritesStartS) * 1e6 / d
	res.StoppedDiskPerAcc = float64(n.StoppedDiskBytes-b.StoppedDiskBytes) / d
	res.CleanStartPerAcUs = (n.CleanStartS - b.CleanStartS) * 1e6 / d
	if b.LoginP50Ms > 0 && b.LoginP99Ms > 0 {
		res.LoginP50Ratio, res.LoginP99Ratio = n.LoginP50Ms/b.LoginP50Ms, n.LoginP99Ms/b.LoginP99Ms
	}
	if !o.SkipProjector {
		s.stopAll() // the projector alone against the server
		if err := s.catchUp(ctx, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts the nats-server process on the run's store and
// returns the time from its start to /healthz answering 200 (JetStream
// enabled and every stream recovered and current).
func (s *scaleRun) startServer(ctx context.Context) (time.Duration, error) {
	cmd := exec.Command(s.o.NATSServer, "-js", "-sd", s.storeDir, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port),
		"-m", strconv.Itoa(s.mport), "--profile", strconv.Itoa(s.pport), "-n", "authscale")
	cmd.Env = append(os.Environ(), s.o.ServerEnv...)
	logf, err := os.OpenFile(filepath.Join(s.tmp, "nats-server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	t := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, fmt.Errorf("start %s: %w", s.o.NATSServer, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", s.port)
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", s.mport)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-exited:
			return 0, fmt.Errorf("nats-server exited at start (log: %s)", filepath.Join(s.tmp, "nats-server.log"))
		default:
		}
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				took := time.Since(t)
				s.startCPU = procCPUSeconds(cmd.Process.Pid)
				return took, nil
			}
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// stopServer stops the process with sig and waits for its exit.
func (s *scaleRun) stopServer(sig syscall.Signal) (time.Duration, error) {
	t := time.Now()
	if err := s.cmd.Process.Signal(sig); err != nil {
		return 0, err
	}
	select {
	case <-s.exited:
		return time.Since(t), nil
	case <-time.After(5 * time.Minute):
		_ = s.cmd.Process.Kill()
		return 0, errors.New("nats-server did not stop within 5 minutes")
	}
}

// up connects, opens the store and starts a commands instance (an empty
// cache: every account is cold).
func (s *scaleRun) up(ctx context.Context) error {
	var err error
	if s.nc, err = s.connect("authscale"); err != nil {
		return err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return err
	}
	if s.pstore, err = eventstore.OpenPartitioned(ctx, s.js, eventstore.JetStreamConfig{Partitions: s.o.Partitions, Uncompressed: s.o.Uncompressed,
		DuplicateWindow: s.o.DuplicateWindow}); err != nil {
		return err
	}
	cfg := commands.Config{Policy: s.policy, Keys: s.keys, Store: s.pstore, Index: s.pstore.Index(),
		Snapshots: s.pstore.Snapshots(), Shadows: s.pstore.Shadows(), Sources: s.pstore.Sources(), Fraud: s.pstore.Fraud(), Logger: s.o.Logger,
		ResponseFloor: -1} // the service's own time: the anti-enumeration floor (100 ms or more) would hide it
	svc, err := commands.New(cfg)
	if err != nil {
		return err
	}
	cnc, err := s.connect("authscale-commands")
	if err != nil {
		return err
	}
	if err := svc.Start(cnc); err != nil {
		return err
	}
	s.stopCmds = func() { _ = svc.Stop() }
	return nil
}

// stopAll stops the commands instance and closes every connection.
func (s *scaleRun) stopAll() {
	if s.stopCmds != nil {
		s.stopCmds()
		s.stopCmds = nil
	}
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	s.nc, s.js = nil, nil
}

// nir is the i-th imported account's NIR.
func scaleNIR(i int) string { return fmt.Sprintf("1%012d", 600_000_000_000+i) }

type scaleRow struct {
	NIR            string `json:"nir"`
	Email          string `json:"email"`
	PasswordHash   string `json:"password_hash"`
	EmailValidated bool   `json:"email_validated"`
	Affiliation    string `json:"affiliation"`
}

type scaleBatch struct {
	RequestID string     `json:"request_id"`
	Channel   string     `json:"channel"`
	Rows      []scaleRow `json:"rows"`
}

// importRange imports accounts [from, to) through account.import_batch,
// as `authctl account import` sends them (Batch rows, Concurrency
// batches in flight), retrying the rows refused as unavailable.
func (s *scaleRun) importRange(ctx context.Context, from, to int) error {
	subject := contract.Subjects(contract.DefaultPrefix).Command(contract.CmdAccountImportBatch)
	batches := (to - from + s.o.Batch - 1) / s.o.Batch
	var done atomic.Int64
	t := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n := done.Load()
				s.progress("scale: import %d/%d (%.0f accounts/s)", from+int(n), to, float64(n)/time.Since(t).Seconds())
			}
		}
	})
	defer func() { close(stop); wg.Wait(); s.lastIO = time.Now() }()
	return parallel(ctx, batches, s.o.Concurrency, func(ctx context.Context, bi int) error {
		lo := from + bi*s.o.Batch
		hi := min(lo+s.o.Batch, to)
		rows := make([]scaleRow, 0, hi-lo)
		for i := lo; i < hi; i++ {
			rows = append(rows, scaleRow{NIR: scaleNIR(i), Email: fmt.Sprintf("import.%d@exemple.fr", i), PasswordHash: s.phc, EmailValidated: true, Affiliation: "active"})
		}
		for try := 1; len(rows) > 0; try++ {
			data, err := json.Marshal(scaleBatch{RequestID: requestID(), Channel: "backoffice", Rows: rows})
			if err != nil {
				return err
			}
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			msg, err := s.nc.RequestWithContext(rctx, subject, data)
			cancel()
			if err != nil {
				return fmt.Errorf("account.import_batch: %w", err)
			}
			var rep struct {
				OK      bool                    `json:"ok"`
				Error   *contract.ErrorBody     `json:"error"`
				Results []contract.ImportResult `json:"results"`
			}
			if err := json.Unmarshal(msg.Data, &rep); err != nil {
				return fmt.Errorf("account.import_batch: reply %q: %w", msg.Data, err)
			}
			if !rep.OK || len(rep.Results) != len(rows) {
				return fmt.Errorf("account.import_batch: ok=%v, %d results for %d rows, error %+v", rep.OK, len(rep.Results), len(rows), rep.Error)
			}
			var again []scaleRow
			for j, r := range rep.Results {
				switch {
				case r.OK:
				case r.Error != nil && r.Error.Code == domain.CodeAccountExists: // a retried row that had been done
				case r.Error != nil && r.Error.Code == domain.CodeUnavailable && try < 5:
					again = append(again, rows[j])
				default:
					return fmt.Errorf("account.import_batch: row %s: %+v", rows[j].NIR, r.Error)
				}
			}
			rows = again
			if len(rows) > 0 {
				if err := sleep(ctx, time.Duration(try)*500*time.Millisecond); err != nil { // a pause before sending again, not a wait for a condition
					return err
				}
			}
		}
		done.Add(int64(hi - lo))
		return nil
	})
}

// measure takes a point at n accounts: disk and memory after the import,
// a clean restart, a kill -9 restart, then cold logins of random accounts
// among the n on a new commands instance, and the server's memory after.
func (s *scaleRun) measure(ctx context.Context, n int) (ScalePoint, error) {
	p := ScalePoint{Accounts: n}
	var err error
	if p.Stores, err = s.stores(ctx); err != nil {
		return p, err
	}
	s.stopAll()
	if p.DiskBytes, err = dirBytes(s.storeDir); err != nil {
		return p, err
	}
	p.ServerRSSMB = procMB(s.cmd.Process.Pid, "VmRSS:")
	p.HeapMB = s.serverHeapMB()
	atN := n == s.o.Accounts
	if atN {
		if err := s.saveProfile(n, "import", &p.ImportHeapProfile); err != nil {
			return p, err
		}
	}
	if s.o.SettleIdle >= 0 {
		var prof string
		if atN {
			prof = s.profilePath(n, "settled")
		}
		mb, took, stable, err := s.settledHeap(ctx, s.lastIO, s.settleIdle(s.window), prof)
		if err != nil {
			return p, err
		}
		p.SettledHeapMB, p.SettleS, p.Settled, p.HeapProfile = mb, took.Seconds(), stable, prof
		s.progress("scale: %d accounts: nats-server live heap %.0f MB after the import, %.0f MB settled (%s later, stable %v); %s",
			n, p.HeapMB, mb, took.Round(time.Second), stable, storesLine(p.Stores))
	}
	// A kill -9 after the import: the server recovers from its last
	// full-state file (index.db), which it rewrites every 2 to 2.5
	// minutes but not for a stream of more than 1,000,000 subjects
	// (highCardinalityThreshold in the pinned filestore.go: then only at
	// a clean stop), and rebuilds the rest from the blocks.
	if _, err := s.stopServer(syscall.SIGKILL); err != nil {
		return p, err
	}
	killWrites, err := s.startServer(ctx)
	if err != nil {
		return p, err
	}
	p.KillWritesStartS, p.KillWritesRSSMB, p.KillWritesCPUS = killWrites.Seconds(), procMB(s.cmd.Process.Pid, "VmRSS:"), s.startCPU
	stop, err := s.stopServer(syscall.SIGTERM)
	if err != nil {
		return p, err
	}
	if p.StoppedDiskBytes, err = dirBytes(s.storeDir); err != nil {
		return p, err
	}
	start, err := s.startServer(ctx)
	if err != nil {
		return p, err
	}
	p.CleanStartCPUS = s.startCPU
	if _, err := s.stopServer(syscall.SIGKILL); err != nil {
		return p, err
	}
	kill, err := s.startServer(ctx)
	if err != nil {
		return p, err
	}
	p.StartedRSSMB, p.KillStartCPUS = procMB(s.cmd.Process.Pid, "VmRSS:"), s.startCPU
	p.CleanStopS, p.CleanStartS, p.KillStartS = stop.Seconds(), start.Seconds(), kill.Seconds()
	s.progress("scale: %d accounts: %.1f MB on disk (%.1f MB stopped), nats-server %.0f MB; start after kill -9 following the import %s; clean stop %s, start %s; start after kill -9 %s",
		n, float64(p.DiskBytes)/1e6, float64(p.StoppedDiskBytes)/1e6, p.ServerRSSMB, killWrites.Round(time.Millisecond), stop.Round(time.Millisecond), start.Round(time.Millisecond), kill.Round(time.Millisecond))
	if err := s.up(ctx); err != nil {
		return p, err
	}
	lat, err := s.coldLogins(ctx, n)
	if err != nil {
		return p, err
	}
	p.LoginP50Ms = float64(percentile(lat, 0.50)) / float64(time.Millisecond)
	p.LoginP99Ms = float64(percentile(lat, 0.99)) / float64(time.Millisecond)
	p.RestartRSSMB = procMB(s.cmd.Process.Pid, "VmRSS:")
	p.RestartHeapMB = s.serverHeapMB()
	if atN {
		if err := s.saveProfile(n, "logins", &p.LoginsHeapProfile); err != nil {
			return p, err
		}
	}
	p.CommandsRSSMB = statusMB("VmRSS:")
	s.progress("scale: %d accounts: %d cold logins p50 %.2f ms, p99 %.2f ms; nats-server %.0f MB after the restart",
		n, len(lat), p.LoginP50Ms, p.LoginP99Ms, p.RestartRSSMB)
	if s.o.SettleIdle >= 0 {
		var prof string
		if atN {
			prof = s.profilePath(n, "restart")
		}
		mb, _, stable, err := s.settledHeap(ctx, s.lastIO, s.settleIdle(s.window), prof)
		if err != nil {
			return p, err
		}
		p.RestartSettledHeapMB, p.Settled, p.RestartHeapProfile = mb, p.Settled && stable, prof
		s.progress("scale: %d accounts: nats-server live heap %.0f MB after the restart and logins, %.0f MB settled", n, p.RestartHeapMB, mb)
	}
	return p, nil
}

// coldLogins times login.password (right password: otp_required) of
// Logins distinct random accounts among the first n, one at a time, on a
// commands instance that has never seen them: each is the index get, the
// snapshot get, the events' read, argon2id and the append.
func (s *scaleRun) coldLogins(ctx context.Context, n int) ([]time.Duration, error) {
	c := &client{prefix: contract.DefaultPrefix}
	nc, err := s.connect("authscale-logins")
	if err != nil {
		return nil, err
	}
	c.conns = append(c.conns, nc)
	idx := rand.Perm(n)[:s.o.Logins]
	out := make([]time.Duration, 0, len(idx))
	for _, i := range idx {
		t := time.Now()
		if _, err := c.expect(ctx, contract.CmdLoginPassword, body{RequestID: requestID(), Channel: "web", NIR: scaleNIR(i), Password: benchPassword}, contract.StatusOTPRequired); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	s.lastIO = time.Now()
	return out, nil
}

// catchUp starts one projector replica on a fresh database and times it
// to the last sequence of every partition.
func (s *scaleRun) catchUp(ctx context.Context, res *ScaleResult) error {
	dbURL, err := s.database(ctx)
	if err != nil {
		return err
	}
	if err := projector.Migrate(ctx, dbURL); err != nil {
		return err
	}
	nc, err := s.connect("authscale-projector")
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	parts := max(s.o.Partitions, 1)
	layout := contract.Layout{Prefix: contract.DefaultPrefix, Partitions: s.o.Partitions}
	last := make([]uint64, parts)
	var total uint64
	for i := range parts {
		st, err := js.Stream(ctx, layout.Stream(i))
		if err != nil {
			return err
		}
		last[i] = st.CachedInfo().State.LastSeq
		total += st.CachedInfo().State.Msgs
	}
	var mu sync.Mutex
	at := make([]uint64, parts)
	p, err := projector.New(projector.Config{DatabaseURL: dbURL, JS: js, Partitions: s.o.Partitions, Name: "authscale", Logger: s.o.Logger,
		IdleWait: 50 * time.Millisecond,
		AfterCommit: func(c projector.Committed) {
			mu.Lock()
			at[c.Partition] = max(at[c.Partition], c.Last)
			mu.Unlock()
		}})
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	s.pgCheckpoint(ctx, conn)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	t := time.Now()
	go func() { done <- p.Run(runCtx) }()
	behind := func() uint64 { // the events still to apply, summed
		mu.Lock()
		defer mu.Unlock()
		var b uint64
		for i := range parts {
			if at[i] < last[i] {
				b += last[i] - at[i]
			}
		}
		return b
	}
	var sum uint64
	for _, l := range last {
		sum += l
	}
	err = waitProgress(ctx, 2*time.Minute, func() uint64 { return sum - behind() }, sum)
	took := time.Since(t)
	cancel()
	<-done
	if err != nil {
		return fmt.Errorf("projector catch-up: %w", err)
	}
	res.ProjectorEvents, res.ProjectorS = total, took.Seconds()
	res.ProjectorPerS = float64(total) / took.Seconds()
	s.progress("scale: projector caught up with %d events in %s: %.0f events/s", total, took.Round(time.Millisecond), res.ProjectorPerS)
	return nil
}

// serverHeapMB is nats-server's live heap: its profiling endpoint's heap
// profile with gc=1 collects first, and ends with runtime.MemStats
// ("# HeapAlloc = <bytes>"); 0 when it cannot be read.
func (s *scaleRun) serverHeapMB() float64 {
	hc := &http.Client{Timeout: time.Minute}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?debug=1&gc=1", s.pport))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(b), "# HeapAlloc = ")
	if !ok {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
	return v / (1 << 20)
}

// dirBytes sums the allocated blocks of the files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// procMB reads a field of /proc/<pid>/status, in MiB (0 where unknown).
func procMB(pid int, field string) float64 {
	return statusFileMB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// WriteScaleReport prints a scale run's table (figure, at the baseline, at
// N, per account or ratio) and, with withJSON, the JSON object alone on
// the last line.
func WriteScaleReport(w io.Writer, res ScaleResult, withJSON bool) error {
	b, n := res.Baseline, res.AtN
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\t%d accounts\t%d accounts\tslope or ratio\n", b.Accounts, n.Accounts)
	fmt.Fprintf(tw, "import rate\t\t%.0f accounts/s\t%.1f s in all\n", res.ImportPerS, res.ImportS)
	fmt.Fprintf(tw, "disk (store directory)\t%.1f MB\t%.1f MB\t%.0f bytes/account\n", float64(b.DiskBytes)/1e6, float64(n.DiskBytes)/1e6, res.DiskPerAccount)
	fmt.Fprintf(tw, "disk after the clean stop (with index.db)\t%.1f MB\t%.1f MB\t%.0f bytes/account\n", float64(b.StoppedDiskBytes)/1e6, float64(n.StoppedDiskBytes)/1e6, res.StoppedDiskPerAcc)
	fmt.Fprintf(tw, "nats-server RSS after the import\t%.0f MB\t%.0f MB\t%.0f bytes/account\n", b.ServerRSSMB, n.ServerRSSMB, res.RSSPerAccount)
	fmt.Fprintf(tw, "nats-server live heap after the import (GC)\t%.0f MB\t%.0f MB\t\n", b.HeapMB, n.HeapMB)
	fmt.Fprintf(tw, "nats-server RSS just after the restart\t%.0f MB\t%.0f MB\t\n", b.StartedRSSMB, n.StartedRSSMB)
	fmt.Fprintf(tw, "nats-server RSS after the restart and logins\t%.0f MB\t%.0f MB\t%.0f bytes/account\n", b.RestartRSSMB, n.RestartRSSMB, res.RestartRSSPerAcc)
	fmt.Fprintf(tw, "nats-server live heap then (GC)\t%.0f MB\t%.0f MB\t%.0f bytes/account\n", b.RestartHeapMB, n.RestartHeapMB, res.HeapPerAccount)
	if n.SettledHeapMB > 0 {
		fmt.Fprintf(tw, "settled live heap after the import\t%.0f MB\t%.0f MB\t%.0f bytes/account\n", b.SettledHeapMB, n.SettledHeapMB, res.SettledPerAccount)
		fmt.Fprintf(tw, "settled live heap after the restart and logins\t%.0f MB\t%.0f MB\t%.0f bytes/account\n", b.RestartSettledHeapMB, n.RestartSettledHeapMB, res.RestartSettledPA)
	}
	fmt.Fprintf(tw, "clean stop (SIGTERM to exit)\t%.2f s\t%.2f s\t\n", b.CleanStopS, n.CleanStopS)
	fmt.Fprintf(tw, "start after a clean stop (to /healthz)\t%.2f s (CPU %.2f s)\t%.2f s (CPU %.2f s)\t%.2f µs/account\n", b.CleanStartS, b.CleanStartCPUS, n.CleanStartS, n.CleanStartCPUS, res.CleanStartPerAcUs)
	fmt.Fprintf(tw, "start after kill -9 (to /healthz)\t%.2f s (CPU %.2f s)\t%.2f s (CPU %.2f s)\t%.2f µs/account\n", b.KillStartS, b.KillStartCPUS, n.KillStartS, n.KillStartCPUS, res.KillStartPerAccUs)
	fmt.Fprintf(tw, "start after kill -9 following the import\t%.2f s (CPU %.2f s)\t%.2f s (CPU %.2f s)\t%.2f µs/account\n", b.KillWritesStartS, b.KillWritesCPUS, n.KillWritesStartS, n.KillWritesCPUS, res.KillWritesPerAcUs)
	fmt.Fprintf(tw, "nats-server RSS just after that start\t%.0f MB\t%.0f MB\t\n", b.KillWritesRSSMB, n.KillWritesRSSMB)
	fmt.Fprintf(tw, "cold login p50\t%.2f ms\t%.2f ms\t%.2fx\n", b.LoginP50Ms, n.LoginP50Ms, res.LoginP50Ratio)
	fmt.Fprintf(tw, "cold login p99\t%.2f ms\t%.2f ms\t%.2fx\n", b.LoginP99Ms, n.LoginP99Ms, res.LoginP99Ratio)
	fmt.Fprintf(tw, "bench process RSS (commands, clients)\t%.0f MB\t%.0f MB\t\n", b.CommandsRSSMB, n.CommandsRSSMB)
	if res.ProjectorEvents > 0 {
		fmt.Fprintf(tw, "projector catch-up (fresh database)\t\t%d events in %.1f s\t%.0f events/s\n", res.ProjectorEvents, res.ProjectorS, res.ProjectorPerS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s; %d partition(s); compression %s; duplicate window %s; hash %s; load %s -> %s; %.0f s\n", res.Machine, res.Partitions, res.Compression,
		time.Duration(res.DuplicateWindowS*float64(time.Second)), res.Hash, res.Load[0], res.Load[1], res.Elapsed)
	if n.SettledHeapMB > 0 {
		fmt.Fprintf(w, "settled heaps: stable %v (baseline %v), %.0f s after the import at N; stores at N: %s\n", n.Settled, b.Settled, n.SettleS, storesLine(n.Stores))
	}
	if n.HeapProfile != "" {
		fmt.Fprintf(w, "heap profiles: go tool pprof -top -inuse_space %s (and %s)\n", n.HeapProfile, n.RestartHeapProfile)
	}
	if !withJSON {
		return nil
	}
	j, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", j)
	return err
}

// procCPUSeconds is a process's CPU time, user and system, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s, the
// value of USER_HZ on Linux); 0 where unknown.
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count after its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (ut + st) / 100
}
