package bench

import (
	"math"
	"strings"
	"testing"
)

func TestSpreadOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{3}, Spread{3, 3, 3, 1}},
		{[]float64{4, 1, 3, 2}, Spread{1, 2.5, 4, 4}},
		{[]float64{5, 1, 3}, Spread{1, 3, 5, 3}},
	} {
		if got := spreadOf(c.in); got != c.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestRatioNoise(t *testing.T) {
	// mean 2, standard deviation 1, t(2) = 4.303: 4.303 / sqrt(3).
	if got, want := ratioNoise([]float64{1, 2, 3}), 4.303/math.Sqrt(3); math.Abs(got-want) > 1e-9 {
		t.Errorf("ratioNoise = %v, want %v", got, want)
	}
	if got := ratioNoise([]float64{1.1}); !math.IsNaN(got) {
		t.Errorf("one round: noise %v, want NaN (not measured)", got)
	}
}

// TestBoundWarning: a flow beats its bound only beyond the noise its
// paired rounds measured.
func TestBoundWarning(t *testing.T) {
	for _, c := range []struct {
		name     string
		ratio    float64
		perRound []float64
		warns    bool
	}{
		{"issue 17's 1.09, steady rounds: mis-measured bound", 1.09, []float64{1.08, 1.10, 1.09, 1.085, 1.095, 1.09}, true},
		{"1.02 with rounds from 0.90 to 1.15: noise", 1.02, []float64{0.90, 1.15, 0.95, 1.10, 1.00, 1.02}, false},
		{"below the bound", 0.95, []float64{0.94, 0.96, 0.95}, false},
		{"exactly the bound", 1.0, []float64{1, 1, 1}, false},
		{"one round above 1: noise not measured", 1.01, []float64{1.01}, true},
		{"one round below 1", 0.99, []float64{0.99}, false},
		{"not measured", 0, nil, false},
	} {
		w := boundWarning("login_vs_hash", c.ratio, c.perRound)
		if (w != "") != c.warns {
			t.Errorf("%s: warning %q, want one: %v", c.name, w, c.warns)
		}
		if w != "" && !strings.HasPrefix(w, "login_vs_hash = ") {
			t.Errorf("%s: warning %q does not name the field first", c.name, w)
		}
	}
}

func TestWarningsOfAResult(t *testing.T) {
	r := Result{LoginVsHash: 1.09, LoginVsHashPerCPU: 0.9, OTPVerifyVsAppend: 0.4, ProjectorVsCopy: 0.5, LoadAvgStart: 1000, LoadAvgEnd: 1001, Retries: 3,
		Details: Details{HashCores: 0.4, LoginCores: 0.6}}
	ws := r.warnings(map[string][]float64{
		"login_vs_hash":        {1.08, 1.10, 1.09, 1.09},
		"otp_verify_vs_append": {0.39, 0.41},
	})
	joined := strings.Join(ws, "\n")
	for _, want := range []string{"login_vs_hash = 1.090", "0.40 cores in the hash windows and 0.60 in the login windows, and per CPU-second the ratio (login_vs_hash_per_cpu) is 0.900",
		"load average 1000.00 at the start", "3 requests or appends timed out"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "otp_verify_vs_append") || strings.Contains(joined, "projector_vs_copy") {
		t.Errorf("a ratio under its bound warned:\n%s", joined)
	}
	if ws := (Result{LoginVsHash: 0.9}).warnings(nil); ws == nil || len(ws) != 0 {
		t.Errorf("quiet run: warnings %#v, want [] (an empty JSON array)", ws)
	}
}
