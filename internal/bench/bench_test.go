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

// issueFields are the keys of the JSON object (issue 8, and issue 11's
// flood figures).
var issueFields = []string{"hash_per_s", "login_flows_per_s", "login_vs_hash", "flood_hashes", "flood_login_p99_ratio", "enumeration_auc", "otp_verify_per_s", "otp_verify_p99_ms",
	"append_per_s", "history_10k_vs_fresh", "projector_events_per_s", "copy_rows_per_s", "projector_vs_copy",
	"notifier_mails_per_s", "rss_mb", "projector_peak_rss_mb"}

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
			Warmup: 100 * time.Millisecond, Rounds: 1, Settle: 100 * time.Millisecond,
			HashTime: 300 * time.Millisecond, LoginTime: 500 * time.Millisecond, LoginAccounts: 2,
			FloodTime: 500 * time.Millisecond, FloodAttackers: 20, EnumerationNIRs: 20,
			OTPClients: 16, OTPVerifications: 200, P99Rate: 200, P99Time: 500 * time.Millisecond,
			AppendClients: 8, AppendTime: 300 * time.Millisecond,
			HistoryEvents: 300, HistoryRuns: 5,
			ProjectorEvents: 2000, ProjectorAccounts: 200, CopyRuns: 1,
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
	want := slices.Sorted(slices.Values(issueFields))
	if !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want %v", keys, want)
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
