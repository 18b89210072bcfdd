package bench

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
)

func TestCompareTwoRuns(t *testing.T) {
	oldData, err := os.ReadFile("testdata/compare_old.json")
	if err != nil {
		t.Fatal(err)
	}
	newData, err := os.ReadFile("testdata/compare_new.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compare(oldData, newData)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]CompareRow{}
	var order []string
	for _, r := range c.Rows {
		rows[r.Field] = r
		order = append(order, r.Field)
	}
	for field, want := range map[string]string{
		"hash_per_s":             VerdictWithin,   // +1 within spreads of 9 and 10
		"otp_verify_per_s":       VerdictBeyond,   // +6,000 against spreads of 2,000
		"otp_verify_vs_append":   VerdictBeyond,   // +0.09 against 0.02 and 0.03
		"append_per_s":           VerdictWithin,   // +1,000 against 9,000
		"projector_events_per_s": VerdictNoSpread, // measured once in each run
		"enumeration_auc":        "",              // only in the new run
		"rss_mb.projector":       "",              // no rounds
		"load_avg_start":         "",
	} {
		if got := rows[field].Verdict; got != want {
			t.Errorf("%s: verdict %q, want %q", field, got, want)
		}
	}
	if d := rows["otp_verify_per_s"].DeltaPct; math.Abs(d-100.0/3) > 1e-9 {
		t.Errorf("otp_verify_per_s delta %v%%, want +33.3%%", d)
	}
	if r := rows["enumeration_auc"]; r.HasOld || !r.HasNew || !math.IsNaN(r.DeltaPct) {
		t.Errorf("enumeration_auc = %+v: only the new run has it", r)
	}
	if order[0] != "hash_per_s" || rows["rss_mb.process"].New != 700 {
		t.Errorf("rows %v: want the report's order, nested rss_mb", order)
	}
	var out bytes.Buffer
	if err := WriteComparison(&out, c); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, want := range []string{"otp_verify_per_s", "+33.3%", VerdictBeyond, "new run: WARNING: load average 4.20"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestCompareReadsReportsAndOldRuns: the whole output of authctl bench
// --json is read (its last line), and a run of schema 1 (no rounds, the
// JSON docs/bench.md showed) compares, with no verdict to give.
func TestCompareReadsReportsAndOldRuns(t *testing.T) {
	res := Result{SchemaVersion: SchemaVersion, HashPerS: 100, LoginFlowsPerS: 95, LoginVsHash: 0.95,
		Spreads: map[string]Spread{"hash_per_s": {95, 100, 104, 3}, "login_flows_per_s": {90, 95, 99, 3}, "login_vs_hash": {0.93, 0.95, 0.97, 3}}}
	var report bytes.Buffer
	if err := WriteReport(&report, res, true); err != nil {
		t.Fatal(err)
	}
	c, err := Compare(report.Bytes(), report.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if c.NewVersion != SchemaVersion {
		t.Errorf("version %d, want %d", c.NewVersion, SchemaVersion)
	}
	for _, r := range c.Rows {
		if r.Field == "hash_per_s" && (r.DeltaPct != 0 || r.Verdict != VerdictWithin) {
			t.Errorf("a run against itself: %+v", r)
		}
	}

	v1 := []byte(`{"hash_per_s":105.53,"login_flows_per_s":98.84,"login_vs_hash":0.9366,"otp_verify_per_s":18929.26,"rss_mb":{"commands":708.2,"projector":2780.2,"notifier":369.1,"process":2780.2}}`)
	c, err = Compare(v1, report.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if c.OldVersion != 1 {
		t.Errorf("a file without schema_version: version %d, want 1", c.OldVersion)
	}
	for _, r := range c.Rows {
		if r.Field == "hash_per_s" && r.Verdict != VerdictNoSpread {
			t.Errorf("against a run without rounds: %+v", r)
		}
	}
	if _, err := Compare([]byte("field value\nno json here\n"), v1); err == nil || !strings.Contains(err.Error(), "old: no JSON object") {
		t.Errorf("err = %v, want old: no JSON object", err)
	}
}
