package bench

import (
	"fmt"
	"math"
	"slices"
)

// Spread is how a figure varied over the rounds it was measured in: the
// least, the median and the greatest of the rounds' values (in the
// figure's unit), and the number of rounds. A figure measured once has
// N = 1 and the three values equal. In the JSON it is the figure's name
// followed by "_rounds".
type Spread struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// spreadOf is the spread of vs (the median of an even number is the mean
// of the middle two); zero for none.
func spreadOf(vs []float64) Spread {
	if len(vs) == 0 {
		return Spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Spread{Min: s[0], Median: med, Max: s[n-1], N: n}
}

// Width is Max - Min, the whole range of the rounds (0 for one round).
func (s Spread) Width() float64 { return s.Max - s.Min }

// String is "min / median / max (n)" in the figure's unit.
func (s Spread) String(unit string) string {
	if s.N == 0 {
		return ""
	}
	if s.N == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%s / %s / %s (%d)", formatValue(s.Min, unit), formatValue(s.Median, unit), formatValue(s.Max, unit), s.N)
}

// ratioNoise is the measured noise of a ratio of a flow to its bound,
// from the per-round ratios (each a flow window over the bound window next
// to it): the half-width of the 95 % confidence interval of their mean,
// Student's t(n-1) times the standard error. It is NaN with fewer than two
// rounds (no noise can be measured). Our choice: rounds are paired, so
// what the machine's other work does to both windows of a round cancels.
func ratioNoise(perRound []float64) float64 {
	n := len(perRound)
	if n < 2 {
		return math.NaN()
	}
	var mean float64
	for _, v := range perRound {
		mean += v
	}
	mean /= float64(n)
	var ss float64
	for _, v := range perRound {
		ss += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(ss / float64(n-1))
	return tQuantile975(n-1) * sd / math.Sqrt(float64(n))
}

// tQuantile975 is Student's t distribution's 97.5th percentile for df
// degrees of freedom (two-sided 95 %), from the standard table.
func tQuantile975(df int) float64 {
	table := []float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086}
	switch {
	case df < 1:
		return math.Inf(1)
	case df <= len(table):
		return table[df-1]
	case df <= 30:
		return 2.06
	}
	return 1.96
}

// beatsBound says whether a flow beat its bound by more than the noise:
// ratio (the flow's rate over all its rounds divided by the bound's) above
// 1 + ratioNoise(perRound). With fewer than two rounds the noise is
// unknown, and any ratio above 1 counts. A bound is what the flow cannot
// exceed (it does the bound's work and more): beating it means the bound
// is mis-measured, or the flow skips work.
func beatsBound(ratio float64, perRound []float64) (noise float64, beats bool) {
	noise = ratioNoise(perRound)
	if math.IsNaN(noise) {
		return noise, ratio > 1
	}
	return noise, ratio > 1+noise
}

// boundWarning is the warning for a flow that beats its bound, or "".
func boundWarning(field string, ratio float64, perRound []float64) string {
	if ratio <= 0 {
		return ""
	}
	noise, beats := beatsBound(ratio, perRound)
	if !beats {
		return ""
	}
	if math.IsNaN(noise) {
		return fmt.Sprintf("%s = %.3f: the flow beats its bound, and with %d round(s) the noise is not measured", field, ratio, len(perRound))
	}
	return fmt.Sprintf("%s = %.3f: the flow beats its bound by more than the measured noise (±%.3f over %d rounds, per-round ratios %s): the bound is mis-measured or the flow skips work",
		field, ratio, noise, len(perRound), fmtRatios(perRound))
}

func fmtRatios(vs []float64) string {
	s := spreadOf(vs)
	return fmt.Sprintf("%.3f to %.3f", s.Min, s.Max)
}

// perRoundRatios divides each flow round by the bound round it was paired
// with; rounds missing on either side are left out.
func perRoundRatios(flow, bound []float64) []float64 {
	var out []float64
	for i := range min(len(flow), len(bound)) {
		if bound[i] > 0 {
			out = append(out, flow[i]/bound[i])
		}
	}
	return out
}
