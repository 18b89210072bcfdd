package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/pgtest"
)

// issueFields are the keys of the JSON object of schema version 1 (issue
// 8, and issue 11's flood figures): a later version keeps each of them,
// with its unit.
var issueFields = []string{"hash_per_s", "login_flows_per_s", "login_vs_hash", "flood_hashes", "flood_login_p99_ratio", "enumeration_auc", "otp_verify_per_s", "otp_verify_p99_ms",
	"append_per_s", "history_10k_vs_fresh", "projector_events_per_s", "copy_rows_per_s", "projector_vs_copy",
	"notifier_mails_per_s", "rss_mb", "projector_peak_rss_mb"}

// version2Fields are the keys schema version 2 added (issue 17), besides
// a "<figure>_rounds" spread for each figure of the table.
var version2Fields = []string{"schema_version", "login_vs_hash_per_cpu", "otp_verify_vs_append", "otp_verify_vs_append_per_cpu",
	"load_avg_start", "load_avg_end", "retries", "warnings"}

// version3Fields are the keys schema version 3 added (issue 17: the
// request/reply hop a verification adds to its append).
var version3Fields = []string{"echo_per_s", "otp_verify_vs_append_echo_per_cpu"}

// TestQuickRunMeasuresEverything runs every phase, tiny, on an embedded
// nats-server and a database of the test Postgres (skipped without one,
// failed under CI=true), and checks each figure was measured and the
// report's last line is the JSON object with every field.
func TestQuickRunMeasuresEverything(t *testing.T) {
	server := pgtest.NewDatabase(t) // skips or fails when there is no Postgres
	policy := domain.SeedPolicy()
	policy.Argon2.Memory, policy.Argon2.Time = 1024, 1 // the race detector slows argon2id a lot
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{
		Quick: true, DatabaseURL: server, Policy: policy, Concurrency: 4, Progress: &progress,
		Sizes: Sizes{
			Warmup: 100 * time.Millisecond, Rounds: 2, Settle: 100 * time.Millisecond,
			LoginTime: 600 * time.Millisecond, LoginAccounts: 2,
			FloodTime: 2 * time.Second, FloodAttackers: 20, EnumerationNIRs: 20, // 1 s flood windows: the block needs 3 hashes in a row, on a busy machine too
			OTPClients: 16, OTPVerifications: 200, P99Rate: 200, P99Time: 500 * time.Millisecond,
			AppendClients: 8, AppendTime: 300 * time.Millisecond,
			HistoryEvents: 300, HistoryRuns: 5,
			ProjectorEvents: 2000, ProjectorAccounts: 200, CopyRuns: 2,
			NotifierMails: 50,
		},
	})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.fields() {
		if !(f.v > 0) {
			t.Errorf("%s = %v, want > 0", f.name, f.v)
		}
	}
	if res.FloodHashes < 3 || res.FloodHashes > 5 {
		t.Errorf("flood_hashes = %v: the seed's rule spends 3 hashes to reach the block, at most 5 allowed", res.FloodHashes)
	}
	if !(res.RSSMB.Commands > 0 && res.RSSMB.Projector > 0 && res.RSSMB.Notifier > 0 && res.RSSMB.Process > 0) {
		t.Errorf("rss_mb = %+v, want every component > 0", res.RSSMB)
	}

	var out bytes.Buffer
	if err := WriteReport(&out, res, true); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &obj); err != nil {
		t.Fatalf("last line is not a JSON object: %v\n%s", err, lines[len(lines)-1])
	}
	var keys []string
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := append(append(slices.Clone(issueFields), version2Fields...), version3Fields...)
	for _, f := range res.fields() {
		want = append(want, f.name+"_rounds")
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want %v", keys, want)
	}
	var version int
	if err := json.Unmarshal(obj["schema_version"], &version); err != nil || version != SchemaVersion {
		t.Errorf("schema_version = %s, want %d", obj["schema_version"], SchemaVersion)
	}
	var warnings []string
	if err := json.Unmarshal(obj["warnings"], &warnings); err != nil || warnings == nil {
		t.Errorf("warnings = %s (%v), want an array", obj["warnings"], err)
	}
	var load float64
	if err := json.Unmarshal(obj["load_avg_start"], &load); err != nil || load <= 0 {
		t.Errorf("load_avg_start = %s (%v), want /proc/loadavg's figure", obj["load_avg_start"], err)
	}
	// The figures measured in rounds have one value per round; the
	// others were measured once.
	for field, n := range map[string]int{"hash_per_s": 2, "login_flows_per_s": 2, "login_vs_hash": 2, "login_vs_hash_per_cpu": 2, "flood_hashes": 2,
		"otp_verify_per_s": 2, "append_per_s": 2, "otp_verify_vs_append": 2, "otp_verify_vs_append_per_cpu": 2, "echo_per_s": 2, "otp_verify_vs_append_echo_per_cpu": 2, "copy_rows_per_s": 2, "projector_vs_copy": 2,
		"enumeration_auc": 1, "notifier_mails_per_s": 1} {
		var s Spread
		if err := json.Unmarshal(obj[field+"_rounds"], &s); err != nil {
			t.Errorf("%s_rounds = %s: %v", field, obj[field+"_rounds"], err)
			continue
		}
		// A flood round may spend no hash at all: on a starved machine
		// its attackers' first wrong password can miss the window.
		if s.N != n || !(s.Min <= s.Median && s.Median <= s.Max && (s.Min > 0 || field == "flood_hashes" && s.Min == 0)) {
			t.Errorf("%s_rounds = %+v, want %d ordered rounds", field, s, n)
		}
	}
	for _, note := range []string{"load average (1, 5, 15 min)", "noise (95 % half-width of the per-round ratios", "login_vs_hash ±"} {
		if !strings.Contains(out.String(), note) {
			t.Errorf("the notes lack %q", note)
		}
	}
	var rss map[string]float64
	if err := json.Unmarshal(obj["rss_mb"], &rss); err != nil || len(rss) != 4 {
		t.Errorf("rss_mb = %s (%v), want commands, projector, notifier, process", obj["rss_mb"], err)
	}
	for _, f := range issueFields {
		if !strings.Contains(out.String(), "\n"+f+" ") {
			t.Errorf("the table has no row %s", f)
		}
	}
}

func TestUnknownPhaseIsRefused(t *testing.T) {
	_, err := Run(context.Background(), Options{Phases: []string{"hashes"}})
	if err == nil || !strings.Contains(err.Error(), `unknown phase "hashes"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRowsTellTargets(t *testing.T) {
	r := Result{LoginVsHash: 0.95, OTPVerifyPerS: 9000, OTPVerifyP99Ms: 1.5, History10kVsFresh: 1.3}
	got := map[string]string{}
	for _, row := range r.Rows() {
		got[row.Field] = row.OK
	}
	for field, want := range map[string]string{"login_vs_hash": "yes", "otp_verify_per_s": "no", "otp_verify_p99_ms": "yes",
		"history_10k_vs_fresh": "no", "projector_vs_copy": "", "hash_per_s": ""} {
		if got[field] != want {
			t.Errorf("%s met = %q, want %q", field, got[field], want)
		}
	}
	if m := r.Missed(); !slices.Equal(m, []string{"otp_verify_per_s", "history_10k_vs_fresh"}) {
		t.Errorf("Missed = %v", m)
	}
}
