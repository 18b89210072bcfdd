// Package bench measures the service end to end on one machine, each figure
// in the same run: argon2id against full web logins, code verifications
// (throughput and p99), raw JetStream appends, the cost of a long history,
// the projector against a raw COPY, and the notifier's mails per second
// (`authctl bench`, `make bench`; docs/bench.md has the results).
//
// Everything runs in this process, on an embedded nats-server (a temporary
// directory) and a fresh Postgres database created for the run and dropped
// after it, unless Options names a NATS server or a Postgres server; even
// then the run works on streams, consumers and a database of its own.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/projector"
)

// Phases, in the order they run. Options.Phases selects some of them (to
// profile one); the ratios need both of their figures.
const (
	PhaseHash      = "hash"
	PhaseLogin     = "login"
	PhaseFlood     = "flood"
	PhaseEnum      = "enumeration"
	PhaseOTP       = "otp"
	PhaseAppend    = "append"
	PhaseHistory   = "history"
	PhaseProjector = "projector"
	PhaseNotifier  = "notifier"
)

// AllPhases lists every phase in run order.
var AllPhases = []string{PhaseHash, PhaseLogin, PhaseFlood, PhaseEnum, PhaseOTP, PhaseAppend, PhaseHistory, PhaseProjector, PhaseNotifier}

// Options configure a run. The zero value is a full run on an embedded
// stack with the seed policy.
type Options struct {
	// Quick takes the short sizes (a smoke run of well under a minute).
	Quick bool
	// NATSURL is a NATS server with JetStream to run on; empty starts an
	// embedded one in a temporary directory. NATSAuth is who the run is
	// there: it creates and deletes streams of its own, so a user with the
	// admin's rights (deploy/nats/users.conf).
	NATSURL  string
	NATSAuth natsutil.Auth
	// DatabaseURL is a Postgres server (any database on it: the run
	// creates its own database there and drops it); empty finds the
	// machine's server as dev mode does, or starts a private one in a
	// temporary directory.
	DatabaseURL string
	// Policy is the commands' policy (its argon2id parameters are the
	// hash bound); zero is domain.SeedPolicy().
	Policy domain.Policy
	// Concurrency is the number of concurrent clients running login flows;
	// default 16.
	Concurrency int
	// Sizes overrides the phases' sizes; zero fields take the full or
	// quick defaults.
	Sizes Sizes
	// Phases runs only these phases (names above); empty runs them all.
	Phases []string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
	// From and PublicURL are the notifier's sender and links
	// (AUTH_SMTP_FROM, AUTH_PUBLIC_URL); empty: the configuration's
	// defaults.
	From, PublicURL string
	// ProjectorBatch is the projector's batch (AUTH_PROJECTOR_BATCH); 0:
	// the projector's default.
	ProjectorBatch int
	// GOGCSet: GOGC is set, so the projector phase keeps it, as
	// cmd/projector does; unset, that phase runs with
	// projector.ProjectorGCPercent.
	GOGCSet bool
	// GOMemLimitSet: GOMEMLIMIT is set, so the projector phase keeps it;
	// unset, the replica runs with projector.ProjectorMemoryLimit.
	GOMemLimitSet bool
	// ReplicaCPUProfile and ReplicaHeapProfile, if set, are files for the
	// projector replica's CPU profile of the replay and its heap profile
	// half-way through it (the replica is a process of its own).
	ReplicaCPUProfile, ReplicaHeapProfile string
}

// Sizes are how long or how much each phase measures.
type Sizes struct {
	Warmup            time.Duration // before the timed windows (logins, appends)
	Rounds            int           // alternations of bound and flow windows (hash/login, append/otp), flood rounds; default 6 (quick 2)
	Settle            time.Duration // before each login or append window, workers back in their stride
	LoginTime         time.Duration // argon2id timed, and login flows timed, each, over all rounds
	LoginAccounts     int           // accounts per login client; default 4
	FloodTime         time.Duration // flood phase: quiet and flood windows, each, over all rounds
	FloodAttackers    int           // concurrent wrong-password senders on the attacked account; default 200
	EnumerationNIRs   int           // registered NIRs timed, and as many unknown ones, per floor setting; default 300
	OTPClients        int           // concurrent verifications; default 64
	OTPVerifications  int           // verifications timed at full speed, over all rounds
	P99Rate           int           // open-loop verifications per second; default 1,000
	P99Time           time.Duration // open-loop duration
	AppendClients     int           // concurrent appenders, one account each; default 64
	AppendTime        time.Duration // appends timed, over all rounds, when the otp phase does not run (else each append window is as long as its verification round)
	HistoryEvents     int           // events of the long account; default 10,000
	HistoryRuns       int           // commands timed per account and state (warm, cold)
	ProjectorEvents   int           // events replayed
	ProjectorAccounts int           // accounts they are spread over
	CopyRuns          int           // raw COPYs (the median is kept); default 5 (quick 3)
	NotifierMails     int           // mails sent
}

// FullSizes are the sizes of a full run.
func FullSizes() Sizes {
	return Sizes{
		Warmup: time.Second, Rounds: 6, Settle: 500 * time.Millisecond,
		LoginTime: 9 * time.Second, LoginAccounts: 4,
		FloodTime: 12 * time.Second, FloodAttackers: 200, EnumerationNIRs: 300, // 2 s flood windows, as with 5 rounds of 10 s before
		OTPClients: 64, OTPVerifications: 30_000, P99Rate: 1000, P99Time: 5 * time.Second,
		AppendClients: 64, AppendTime: 5 * time.Second,
		HistoryEvents: 10_000, HistoryRuns: 200,
		ProjectorEvents: 1_000_000, ProjectorAccounts: 20_000, CopyRuns: 5,
		NotifierMails: 5_000,
	}
}

// QuickSizes are the sizes of `authctl bench --quick`.
func QuickSizes() Sizes {
	return Sizes{
		Warmup: 300 * time.Millisecond, Rounds: 2, Settle: 300 * time.Millisecond,
		LoginTime: 2 * time.Second, LoginAccounts: 4,
		FloodTime: 2 * time.Second, FloodAttackers: 200, EnumerationNIRs: 100,
		OTPClients: 64, OTPVerifications: 2_000, P99Rate: 1000, P99Time: time.Second,
		AppendClients: 64, AppendTime: 1500 * time.Millisecond,
		HistoryEvents: 10_000, HistoryRuns: 100, // 100: the tail after the snapshot goes through a whole cycle
		ProjectorEvents: 20_000, ProjectorAccounts: 2_000, CopyRuns: 3,
		NotifierMails: 500,
	}
}

func (s Sizes) withDefaults(d Sizes) Sizes {
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pickD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pickD(&s.Warmup, d.Warmup)
	pick(&s.Rounds, d.Rounds)
	pickD(&s.Settle, d.Settle)
	pickD(&s.LoginTime, d.LoginTime)
	pick(&s.LoginAccounts, d.LoginAccounts)
	pickD(&s.FloodTime, d.FloodTime)
	pick(&s.FloodAttackers, d.FloodAttackers)
	pick(&s.EnumerationNIRs, d.EnumerationNIRs)
	pick(&s.OTPClients, d.OTPClients)
	pick(&s.OTPVerifications, d.OTPVerifications)
	pick(&s.P99Rate, d.P99Rate)
	pickD(&s.P99Time, d.P99Time)
	pick(&s.AppendClients, d.AppendClients)
	pickD(&s.AppendTime, d.AppendTime)
	pick(&s.HistoryEvents, d.HistoryEvents)
	pick(&s.HistoryRuns, d.HistoryRuns)
	pick(&s.ProjectorEvents, d.ProjectorEvents)
	pick(&s.ProjectorAccounts, d.ProjectorAccounts)
	pick(&s.CopyRuns, d.CopyRuns)
	pick(&s.NotifierMails, d.NotifierMails)
	return s
}

// SchemaVersion is the JSON object's version: 1 had the figures of issues
// 8 and 11 alone (no schema_version key); 2 added schema_version,
// login_vs_hash_per_cpu, otp_verify_vs_append, otp_verify_vs_append_per_cpu,
// load_avg_start, load_avg_end, retries, warnings and a "<field>_rounds"
// spread for each measured figure; 3 added echo_per_s and
// otp_verify_vs_append_echo_per_cpu (docs/bench.md, "The JSON object"). A field keeps its
// name and unit across versions, so that runs of different commits can be
// compared (authctl bench compare).
const SchemaVersion = 3

// Result holds the figures. The JSON object has the fields of issue 8,
// issue 11's flood figures, and those of issue 17 (SchemaVersion); Details
// (not in the JSON) says how each was obtained.
type Result struct {
	SchemaVersion      int     `json:"schema_version"`
	HashPerS           float64 `json:"hash_per_s"`
	LoginFlowsPerS     float64 `json:"login_flows_per_s"`
	LoginVsHash        float64 `json:"login_vs_hash"`
	LoginVsHashPerCPU  float64 `json:"login_vs_hash_per_cpu"`
	FloodHashes        float64 `json:"flood_hashes"`
	FloodLoginP99Ratio float64 `json:"flood_login_p99_ratio"`
	EnumerationAUC     float64 `json:"enumeration_auc"`
	OTPVerifyPerS      float64 `json:"otp_verify_per_s"`
	OTPVerifyP99Ms     float64 `json:"otp_verify_p99_ms"`
	AppendPerS         float64 `json:"append_per_s"`
	OTPVerifyVsAppend  float64 `json:"otp_verify_vs_append"`
	// OTPVerifyVsAppendPerCPU and LoginVsHashPerCPU are the ratios of
	// the rates per CPU-second of the process instead of per second:
	// what each window costs, whatever share of the machine it got.
	OTPVerifyVsAppendPerCPU float64 `json:"otp_verify_vs_append_per_cpu"`
	// EchoPerS is plain NATS request/reply round trips per second (no
	// work behind the reply), by as many clients as the verifications,
	// in windows that alternate with theirs: the hop a verification adds
	// to its append, which no code of ours can remove. Schema version 3.
	EchoPerS float64 `json:"echo_per_s"`
	// OTPVerifyVsAppendEchoPerCPU is (CPU per append + CPU per echo) /
	// CPU per verification: a verification against the whole of its
	// bound (an append and a request/reply hop), so 1 means it does
	// nothing else; per CPU-second of the process. Schema version 3.
	OTPVerifyVsAppendEchoPerCPU float64 `json:"otp_verify_vs_append_echo_per_cpu"`
	History10kVsFresh           float64 `json:"history_10k_vs_fresh"`
	ProjectorEventsPerS         float64 `json:"projector_events_per_s"`
	CopyRowsPerS                float64 `json:"copy_rows_per_s"`
	ProjectorVsCopy             float64 `json:"projector_vs_copy"`
	NotifierMailsPerS           float64 `json:"notifier_mails_per_s"`
	RSSMB                       RSS     `json:"rss_mb"`

	// LoadAvgStart and LoadAvgEnd are /proc/loadavg's 1-minute load
	// average when the run started and when it ended (the end includes
	// the run's own load): what else the machine was doing.
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
	// Retries counts the requests and appends tried again after a
	// timeout (a loaded machine); see retryTimeouts.
	Retries int64 `json:"retries"`
	// Warnings say why some figures should not be trusted as they are
	// (a flow beating its bound beyond the noise, a loaded machine,
	// retries); [] when none.
	Warnings []string `json:"warnings"`
	// Spreads are each measured figure's rounds, by field name: in the
	// JSON as "<field>_rounds" (MarshalJSON).
	Spreads map[string]Spread `json:"-"`

	ProjectorFigures

	Details Details `json:"-"`
}

// RSS is the peak resident memory of the process, in MiB, while each
// component's phases ran (every component runs in this process, with the
// embedded nats-server and the load generators: see docs/bench.md), and
// over the whole run.
type RSS struct {
	Commands  float64 `json:"commands"`
	Projector float64 `json:"projector"`
	Notifier  float64 `json:"notifier"`
	Process   float64 `json:"process"`
}

// Details are the figures behind the figures.
type Details struct {
	Machine string
	Load    [2]string // /proc/loadavg's three load averages at the start and the end (other work on the machine)
	Policy  string
	Sizes   Sizes
	Elapsed time.Duration

	Hashes int

	// The CPU time of the process per second of the windows (cores it
	// got) in the hash, login, verification and append windows.
	HashCores, LoginCores, OTPCores, AppendCores, EchoCores float64

	LoginClients, LoginFlows, LoginErrors int
	LoginP50, LoginP99                    time.Duration

	FloodQuietP99, FloodP99     time.Duration // login-flow p99 without and with the flood
	FloodQuietFlows, FloodFlows int
	FloodAttacks, FloodLocked   int // wrong passwords sent; answered account_locked
	FloodClients                int

	EnumerationNIRs           int
	EnumerationFloor          time.Duration
	EnumerationAUCNoFloor     float64
	EnumerationMedians        [2]time.Duration // registered, unknown
	EnumerationMediansNoFloor [2]time.Duration

	OTPPrepared, OTPErrors int
	OTPP50, OTPP99         time.Duration // of the full-speed run
	OpenLoopP50            time.Duration
	OpenLoopSent           int
	OpenLoopRate           float64 // achieved

	Appends int

	// Echoes are the request/reply round trips timed (echo_per_s); the
	// CPU times are the process's per verification, append and echo.
	Echoes                                 int
	CPUPerVerify, CPUPerAppend, CPUPerEcho time.Duration

	HistoryColdNew, HistoryColdShort, HistoryCold10k time.Duration // cold: new account, 200 events, HistoryEvents
	HistoryWarmShort, HistoryWarm10k                 time.Duration

	ProjectorEvents   int
	ProjectorTook     time.Duration
	ProjectorBatches  int
	ProjectorInTx     time.Duration     // in batch transactions
	ProjectorPhases   projector.Timings // ProjectorInTx by phase
	ProjectorMaxBatch int               // events of the largest batch
	ProjectorHeapMB   float64           // the replica's live heap half-way (after a GC)
	CopyRows          int64
	CopyRates         []float64

	Mails     int
	MailsTook time.Duration

	// RatioNoise is each bound ratio's measured noise (ratioNoise of
	// its per-round ratios; absent with fewer than two rounds).
	RatioNoise map[string]float64

	// RSSBase is what was resident when each component's phases began
	// (after a GC): the embedded nats-server, the load generators, and
	// what earlier phases left.
	RSSBase RSS
}

// Targets of issue 8, by field.
var targets = []struct {
	field   string
	atLeast bool
	value   float64
}{
	{"login_vs_hash", true, 0.9},
	{"flood_hashes", false, 5},
	{"flood_login_p99_ratio", false, 1.5},
	{"enumeration_auc", false, 0.55},
	{"enumeration_auc", true, 0.45},
	{"otp_verify_per_s", true, 10_000},
	{"otp_verify_p99_ms", false, 5},
	{"otp_verify_vs_append", true, 0.6},
	{"history_10k_vs_fresh", false, 1.2},
	{"projector_events_per_s", true, 50_000},
	{"projector_vs_copy", true, 0.8},
	{"projector_peak_rss_mb", false, 512},
}

// Row is one line of the table: field, value, target, whether the target
// is met ("" when the field has no target or was not measured), and the
// spread of its rounds.
type Row struct {
	Field, Value, Target, OK, Spread string
}

// figure is one figure of the table: its JSON name, value and unit.
type figure struct {
	name string
	v    float64
	unit string
}

func (r Result) fields() []figure {
	return []figure{
		{"hash_per_s", r.HashPerS, "/s"},
		{"login_flows_per_s", r.LoginFlowsPerS, "/s"},
		{"login_vs_hash", r.LoginVsHash, ""},
		{"login_vs_hash_per_cpu", r.LoginVsHashPerCPU, ""},
		{"flood_hashes", r.FloodHashes, ""},
		{"flood_login_p99_ratio", r.FloodLoginP99Ratio, ""},
		{"enumeration_auc", r.EnumerationAUC, ""},
		{"otp_verify_per_s", r.OTPVerifyPerS, "/s"},
		{"otp_verify_p99_ms", r.OTPVerifyP99Ms, "ms"},
		{"append_per_s", r.AppendPerS, "/s"},
		{"otp_verify_vs_append", r.OTPVerifyVsAppend, ""},
		{"otp_verify_vs_append_per_cpu", r.OTPVerifyVsAppendPerCPU, ""},
		{"echo_per_s", r.EchoPerS, "/s"},
		{"otp_verify_vs_append_echo_per_cpu", r.OTPVerifyVsAppendEchoPerCPU, ""},
		{"history_10k_vs_fresh", r.History10kVsFresh, ""},
		{"projector_events_per_s", r.ProjectorEventsPerS, "/s"},
		{"copy_rows_per_s", r.CopyRowsPerS, "/s"},
		{"projector_vs_copy", r.ProjectorVsCopy, ""},
		{"projector_peak_rss_mb", r.ProjectorPeakRSSMB, " MiB"},
		{"notifier_mails_per_s", r.NotifierMailsPerS, "/s"},
	}
}

// Rows is the results table.
func (r Result) Rows() []Row {
	var rows []Row
	for _, f := range r.fields() {
		row := Row{Field: f.name, Value: formatValue(f.v, f.unit), Spread: r.Spreads[f.name].String(f.unit)}
		met := true
		var bounds []string
		for _, t := range targets {
			if t.field != f.name {
				continue
			}
			op := ">="
			if !t.atLeast {
				op = "<="
			}
			bounds = append(bounds, op+" "+formatValue(t.value, ""))
			met = met && (t.atLeast && f.v >= t.value || !t.atLeast && f.v <= t.value)
		}
		if len(bounds) > 0 {
			row.Target = strings.Join(bounds, " and ")
			if f.v != 0 {
				row.OK = map[bool]string{true: "yes", false: "no"}[met]
			}
		}
		if f.v == 0 {
			row.Value = "-"
		}
		rows = append(rows, row)
	}
	rss := fmt.Sprintf("commands %.0f, projector %.0f, notifier %.0f, whole run %.0f",
		r.RSSMB.Commands, r.RSSMB.Projector, r.RSSMB.Notifier, r.RSSMB.Process)
	rows = append(rows, Row{Field: "rss_mb", Value: rss})
	return rows
}

// Missed lists the fields whose targets were measured and missed.
func (r Result) Missed() []string {
	var out []string
	for _, row := range r.Rows() {
		if row.OK == "no" {
			out = append(out, row.Field)
		}
	}
	return out
}

// Notes are the details worth a line under the table.
func (r Result) Notes() []string {
	d := r.Details
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	add("machine: %s; policy %s", d.Machine, d.Policy)
	if d.Hashes > 0 {
		add("hash: %d argon2id hashes on %d goroutines, in %d windows of %s alternating with the login windows; the process used %.2f cores in the hash windows, %.2f in the login windows",
			d.Hashes, runtime.GOMAXPROCS(0), max(1, d.Sizes.Rounds), d.Sizes.LoginTime/time.Duration(max(1, d.Sizes.Rounds)), d.HashCores, d.LoginCores)
	}
	if d.LoginFlows > 0 {
		add("login: %d flows by %d clients (password, code sent, code read from the stream, code verified), %d errors; flow p50 %s, p99 %s",
			d.LoginFlows, d.LoginClients, d.LoginErrors, ms(d.LoginP50), ms(d.LoginP99))
	}
	if d.FloodAttacks > 0 {
		add("flood: %d wrong passwords by %d senders on one account per round (%d answered account_locked) while %d clients log in; login p99 %s (%d flows) quiet, %s (%d flows) under the flood",
			d.FloodAttacks, d.Sizes.FloodAttackers, d.FloodLocked, d.FloodClients, ms(d.FloodQuietP99), d.FloodQuietFlows, ms(d.FloodP99), d.FloodFlows)
	}
	if d.EnumerationNIRs > 0 {
		add("enumeration: %d registered and %d unknown NIRs, one wrong password each, interleaved, on a cold instance: medians %s and %s with the %s response floor; without it %s and %s, P(registered slower) %.3f",
			d.EnumerationNIRs, d.EnumerationNIRs, ms(d.EnumerationMedians[0]), ms(d.EnumerationMedians[1]), ms(d.EnumerationFloor),
			ms(d.EnumerationMediansNoFloor[0]), ms(d.EnumerationMediansNoFloor[1]), d.EnumerationAUCNoFloor)
	}
	if d.OTPPrepared > 0 {
		add("otp: %d pending logins prepared; %d verifications by %d clients in %d rounds, p50 %s, p99 %s; open loop %d at %.0f/s: p50 %s; %d errors",
			d.OTPPrepared, d.Sizes.OTPVerifications, d.Sizes.OTPClients, max(1, d.Sizes.Rounds), ms(d.OTPP50), ms(d.OTPP99),
			d.OpenLoopSent, d.OpenLoopRate, ms(d.OpenLoopP50), d.OTPErrors)
	}
	if d.Echoes > 0 && d.CPUPerVerify > 0 && d.CPUPerAppend > 0 {
		add("echo: %d plain request/reply round trips by %d clients in windows as long as the verification rounds, %.2f cores; CPU per verification %s, per append %s, per echo %s: the hop is %.0f %% of a verification, append and hop %.0f %%, and otp_verify_vs_append_per_cpu could reach %.2f at most",
			d.Echoes, d.Sizes.OTPClients, d.EchoCores, us(d.CPUPerVerify), us(d.CPUPerAppend), us(d.CPUPerEcho),
			100*float64(d.CPUPerEcho)/float64(d.CPUPerVerify), 100*float64(d.CPUPerAppend+d.CPUPerEcho)/float64(d.CPUPerVerify),
			float64(d.CPUPerAppend)/float64(d.CPUPerAppend+d.CPUPerEcho))
	}
	if d.Appends > 0 {
		add("append: %d appends by %d clients, one account each, in %d windows (as long as the verification rounds they alternate with, when both ran); the process used %.2f cores in the append windows, %.2f in the verification rounds",
			d.Appends, d.Sizes.AppendClients, max(1, d.Sizes.Rounds), d.AppendCores, d.OTPCores)
	}
	if d.HistoryColdNew > 0 {
		add("history (account.set_affiliation, medians of %d): cold (new instance: snapshot + events after it) %s on a new account, %s with %d events, %s with %d events; warm %s with %d events, %s with %d events",
			d.Sizes.HistoryRuns, us(d.HistoryColdNew), us(d.HistoryColdShort), shortHistory, us(d.HistoryCold10k), d.Sizes.HistoryEvents,
			us(d.HistoryWarmShort), shortHistory, us(d.HistoryWarm10k), d.Sizes.HistoryEvents)
	}
	if d.ProjectorEvents > 0 {
		p := d.ProjectorPhases
		rd := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
		add("projector: %d events in %s, %d batches (largest %d events), %s in their transactions (begin %s, devices %s, staging COPY %s, accounts merge %s, attempts COPY %s, fraud counters %s, commit %s); replica process peak RSS %.0f MiB, live heap half-way %.0f MiB; raw COPY of its %d rows: %v rows/s (median kept)",
			d.ProjectorEvents, rd(d.ProjectorTook), d.ProjectorBatches, d.ProjectorMaxBatch, rd(d.ProjectorInTx),
			rd(p.Begin), rd(p.Devices), rd(p.Staging), rd(p.Accounts), rd(p.Attempts), rd(p.Fraud), rd(p.Commit),
			r.ProjectorPeakRSSMB, d.ProjectorHeapMB, d.CopyRows, roundAll(d.CopyRates))
	}
	if d.Mails > 0 {
		add("notifier: %d mails in %s", d.Mails, d.MailsTook.Round(time.Millisecond))
	}
	if r.RSSMB.Process > 0 {
		add("rss (MiB, whole process: every component, the embedded nats-server and the load generators): peak during commands phases %.0f (resident at their start %.0f), projector %.0f (%.0f), notifier %.0f (%.0f); whole run %.0f",
			r.RSSMB.Commands, d.RSSBase.Commands, r.RSSMB.Projector, d.RSSBase.Projector, r.RSSMB.Notifier, d.RSSBase.Notifier, r.RSSMB.Process)
	}
	var noise []string
	for _, f := range boundRatios {
		if n, ok := d.RatioNoise[f]; ok {
			noise = append(noise, fmt.Sprintf("%s ±%.3f", f, n))
		}
	}
	if len(noise) > 0 {
		add("noise (95 %% half-width of the per-round ratios; a ratio above 1 + noise is a warning): %s", strings.Join(noise, ", "))
	}
	add("run: %s; load average (1, 5, 15 min) %s at the start, %s at the end, on %d CPUs; %d requests or appends retried after a timeout",
		d.Elapsed.Round(time.Second), d.Load[0], d.Load[1], runtime.NumCPU(), r.Retries)
	return out
}

func formatValue(v float64, unit string) string {
	switch {
	case unit == "/s" || unit == " MiB" || v >= 1000:
		return fmt.Sprintf("%.0f%s", v, unit)
	case unit == "ms":
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func roundAll(fs []float64) []float64 {
	out := make([]float64, len(fs))
	for i, f := range fs {
		out[i] = float64(int64(f))
	}
	return out
}

// Run runs the phases and returns the figures. A phase that fails ends
// the run with its error; what was started is stopped and what was
// created (temporary directory, database, streams) removed.
func Run(ctx context.Context, opts Options) (res Result, err error) {
	start := time.Now()
	if opts.Policy.Name == "" {
		opts.Policy = domain.SeedPolicy()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	def := FullSizes()
	if opts.Quick {
		def = QuickSizes()
	}
	opts.Sizes = opts.Sizes.withDefaults(def)
	for _, p := range opts.Phases {
		if !slices.Contains(AllPhases, p) {
			return res, fmt.Errorf("bench: unknown phase %q (phases: %s)", p, strings.Join(AllPhases, ", "))
		}
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.From == "" {
		opts.From = config.Lookup("AUTH_SMTP_FROM")
	}
	if opts.PublicURL == "" {
		opts.PublicURL = config.Lookup("AUTH_PUBLIC_URL")
	}
	res.SchemaVersion = SchemaVersion
	res.Details.Machine = machine()
	res.Details.Load[0] = loadAvgs()
	res.LoadAvgStart = loadAvg1()
	a := opts.Policy.Argon2
	res.Details.Policy = fmt.Sprintf("%s (argon2id m=%d KiB, t=%d, p=%d)", opts.Policy.Name, a.Memory, a.Time, a.Threads)
	res.Details.Sizes = opts.Sizes

	r := &runner{opts: opts, sizes: opts.Sizes, res: &res, mem: newPeaks(), roundValues: map[string][]float64{}}
	defer func() {
		if cerr := r.close(); cerr != nil && err == nil {
			err = cerr
		}
		res.RSSMB.Process = r.mem.process()
		res.Details.Elapsed = time.Since(start)
		res.Details.Load[1] = loadAvgs()
		res.LoadAvgEnd = loadAvg1()
		res.Retries = r.retries.Load()
		res.Spreads = r.spreads()
		res.Warnings = res.warnings(r.roundValues)
		res.Details.RatioNoise = map[string]float64{}
		for _, f := range boundRatios {
			if n := ratioNoise(r.roundValues[f]); !math.IsNaN(n) {
				res.Details.RatioNoise[f] = n
			}
		}
	}()
	if err := r.setup(ctx); err != nil {
		return res, err
	}
	selected := func(phase string) bool { return len(opts.Phases) == 0 || slices.Contains(opts.Phases, phase) }
	steps := []struct {
		phase     string
		component string
		run       func(context.Context) error
	}{
		{PhaseHash + "+" + PhaseLogin, "commands", func(ctx context.Context) error {
			return r.hashLogin(ctx, selected(PhaseHash), selected(PhaseLogin))
		}},
		{PhaseFlood, "commands", r.flood},
		{PhaseEnum, "commands", r.enumeration},
		{PhaseOTP + "+" + PhaseAppend, "commands", func(ctx context.Context) error {
			return r.otpAppend(ctx, selected(PhaseOTP), selected(PhaseAppend))
		}},
		{PhaseHistory, "commands", r.history},
		{PhaseProjector, "projector", r.projector},
		{PhaseNotifier, "notifier", r.notifier},
	}
	for _, s := range steps {
		if !slices.ContainsFunc(strings.Split(s.phase, "+"), selected) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		r.mem.begin()
		t := time.Now()
		if err := s.run(ctx); err != nil {
			return res, fmt.Errorf("bench %s: %w", s.phase, err)
		}
		r.mem.end(s.component)
		r.progress("%s: done in %s", s.phase, time.Since(t).Round(time.Millisecond))
	}
	res.RSSMB.Commands, res.RSSMB.Projector, res.RSSMB.Notifier = r.mem.peak("commands"), r.mem.peak("projector"), r.mem.peak("notifier")
	res.Details.RSSBase = RSS{Commands: r.mem.baseline("commands"), Projector: r.mem.baseline("projector"), Notifier: r.mem.baseline("notifier")}
	if res.HashPerS > 0 && res.LoginFlowsPerS > 0 {
		res.LoginVsHash = res.LoginFlowsPerS / res.HashPerS
	}
	if res.OTPVerifyPerS > 0 && res.AppendPerS > 0 {
		res.OTPVerifyVsAppend = res.OTPVerifyPerS / res.AppendPerS
	}
	if res.ProjectorEventsPerS > 0 && res.CopyRowsPerS > 0 {
		res.ProjectorVsCopy = res.ProjectorEventsPerS / res.CopyRowsPerS
		// The projector replays once; the bound's rounds are the COPYs.
		r.rounds("copy_rows_per_s", res.Details.CopyRates)
		var perCopy []float64
		for _, c := range res.Details.CopyRates {
			perCopy = append(perCopy, res.ProjectorEventsPerS/c)
		}
		r.rounds("projector_vs_copy", perCopy)
	}
	return res, nil
}

// errNoProgress: a phase's work stopped moving.
var errNoProgress = errors.New("no progress")

// rounds records a figure's per-round values (Result.Spreads).
func (r *runner) rounds(field string, vs []float64) {
	if len(vs) > 0 {
		r.roundValues[field] = slices.Clone(vs)
	}
}

// spreads are the spreads of the measured figures: of their rounds, or a
// single run (N = 1) for a figure measured once.
func (r *runner) spreads() map[string]Spread {
	out := map[string]Spread{}
	for _, f := range r.res.fields() {
		if f.v == 0 {
			continue
		}
		if vs, ok := r.roundValues[f.name]; ok {
			out[f.name] = spreadOf(vs)
		} else {
			out[f.name] = Spread{Min: f.v, Median: f.v, Max: f.v, N: 1}
		}
	}
	return out
}

// boundRatios are the ratios of a flow to a bound that does a part of its
// work: the flow can reach the bound, not pass it.
var boundRatios = []string{"login_vs_hash", "login_vs_hash_per_cpu", "otp_verify_vs_append", "otp_verify_vs_append_per_cpu", "otp_verify_vs_append_echo_per_cpu", "projector_vs_copy"}

// warnings are the reasons not to take the figures as they are: a flow
// beating its bound by more than the noise (the three ratios whose bound
// does a part of the flow's work: the flow can reach it, not pass it), a
// machine loaded at the start (more runnable tasks than CPUs), and
// retries after timeouts.
func (r Result) warnings(rounds map[string][]float64) []string {
	out := []string{}
	d := r.Details
	for _, b := range []struct {
		field       string
		ratio       float64
		bound, flow string
		boundCores  float64
		flowCores   float64
		perCPUField string
		perCPURatio float64
	}{
		{"login_vs_hash", r.LoginVsHash, "hash", "login", d.HashCores, d.LoginCores, "login_vs_hash_per_cpu", r.LoginVsHashPerCPU},
		{"login_vs_hash_per_cpu", r.LoginVsHashPerCPU, "", "", 0, 0, "", 0},
		{"otp_verify_vs_append", r.OTPVerifyVsAppend, "append", "verification", d.AppendCores, d.OTPCores, "otp_verify_vs_append_per_cpu", r.OTPVerifyVsAppendPerCPU},
		{"otp_verify_vs_append_per_cpu", r.OTPVerifyVsAppendPerCPU, "", "", 0, 0, "", 0},
		{"otp_verify_vs_append_echo_per_cpu", r.OTPVerifyVsAppendEchoPerCPU, "", "", 0, 0, "", 0},
		{"projector_vs_copy", r.ProjectorVsCopy, "", "", 0, 0, "", 0},
	} {
		w := boundWarning(b.field, b.ratio, rounds[b.field])
		if w == "" {
			continue
		}
		if b.boundCores > 0 && b.flowCores > 0 {
			w += fmt.Sprintf("; the process used %.2f cores in the %s windows and %.2f in the %s windows, and per CPU-second the ratio (%s) is %.3f",
				b.boundCores, b.bound, b.flowCores, b.flow, b.perCPUField, b.perCPURatio)
		}
		out = append(out, w)
	}
	if cpus := runtime.NumCPU(); r.LoadAvgStart > float64(cpus) {
		out = append(out, fmt.Sprintf("load average %.2f at the start on %d CPUs (%.2f at the end): other work shared the machine, so absolute figures are a share of it; compare the ratios to bounds measured in the same run",
			r.LoadAvgStart, cpus, r.LoadAvgEnd))
	}
	if r.Retries > 0 {
		out = append(out, fmt.Sprintf("%d requests or appends timed out and were tried again: latencies include the waits", r.Retries))
	}
	return out
}
