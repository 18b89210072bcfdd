package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Verdicts of a compared figure (CompareRow.Verdict).
const (
	// VerdictBeyond: the change is larger than the spread of the rounds
	// of each run (max - min): not the runs' own noise.
	VerdictBeyond = "beyond both spreads"
	// VerdictWithin: the change is within one run's spread or the
	// other's: it may be noise.
	VerdictWithin = "~ (within spread)"
	// VerdictNoSpread: a run measured the figure once, or is older than
	// schema version 2 (no rounds): nothing to judge the change by.
	VerdictNoSpread = "no spread"
)

// CompareRow is one figure of two runs of authctl bench --json.
type CompareRow struct {
	Field          string
	Old, New       float64
	HasOld, HasNew bool
	// DeltaPct is (New - Old) / Old in percent; NaN when Old is 0 or a
	// run lacks the figure.
	DeltaPct float64
	// Verdict is one of the Verdict constants, or "" for a figure
	// without rounds (memory, load, retries) or missing in a run.
	Verdict string
}

// Comparison is two runs, figure by figure, in the report's order.
type Comparison struct {
	OldVersion, NewVersion   int // schema_version; 1 for a file without one
	Rows                     []CompareRow
	OldWarnings, NewWarnings []string
}

// benchRun is a run's JSON object, read back: its numbers by field (nested
// objects' as "object.key"), its spreads, its version and its warnings.
type benchRun struct {
	version  int
	values   map[string]float64
	spreads  map[string]Spread
	warnings []string
}

// parseRun reads a run: a file holding the JSON object alone, or the whole
// output of authctl bench --json (the object is its last line).
func parseRun(data []byte) (benchRun, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(data), &obj); err != nil {
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		found := false
		for i := len(lines) - 1; i >= 0 && !found; i-- {
			l := bytes.TrimSpace(lines[i])
			found = len(l) > 0 && l[0] == '{' && json.Unmarshal(l, &obj) == nil
		}
		if !found {
			return benchRun{}, errors.New("no JSON object (the output of authctl bench --json, or its last line)")
		}
	}
	run := benchRun{version: 1, values: map[string]float64{}, spreads: map[string]Spread{}}
	for k, raw := range obj {
		switch {
		case k == "schema_version":
			if err := json.Unmarshal(raw, &run.version); err != nil {
				return benchRun{}, fmt.Errorf("schema_version: %w", err)
			}
		case k == "warnings":
			if err := json.Unmarshal(raw, &run.warnings); err != nil {
				return benchRun{}, fmt.Errorf("warnings: %w", err)
			}
		case strings.HasSuffix(k, roundsSuffix):
			var s Spread
			if err := json.Unmarshal(raw, &s); err != nil {
				return benchRun{}, fmt.Errorf("%s: %w", k, err)
			}
			run.spreads[strings.TrimSuffix(k, roundsSuffix)] = s
		default:
			var v float64
			if json.Unmarshal(raw, &v) == nil {
				run.values[k] = v
				continue
			}
			var nested map[string]float64
			if json.Unmarshal(raw, &nested) == nil {
				for nk, nv := range nested {
					run.values[k+"."+nk] = nv
				}
			}
		}
	}
	return run, nil
}

// compareOrder is the report's order of the fields; others follow, sorted.
func compareOrder() []string {
	var out []string
	for _, f := range (Result{}).fields() {
		out = append(out, f.name)
	}
	return append(out, "rss_mb.commands", "rss_mb.projector", "rss_mb.notifier", "rss_mb.process",
		"load_avg_start", "load_avg_end", "retries")
}

// Compare reads two runs (the JSON of authctl bench --json, alone or as
// the last line of the output) and compares each figure: old, new, change
// in percent, and whether the change exceeds the spread of both runs'
// rounds (benchstat's question, answered with the min-max range that the
// JSON keeps). Errors: a file without a JSON object.
func Compare(oldData, newData []byte) (Comparison, error) {
	o, err := parseRun(oldData)
	if err != nil {
		return Comparison{}, fmt.Errorf("old: %w", err)
	}
	n, err := parseRun(newData)
	if err != nil {
		return Comparison{}, fmt.Errorf("new: %w", err)
	}
	c := Comparison{OldVersion: o.version, NewVersion: n.version, OldWarnings: o.warnings, NewWarnings: n.warnings}
	order := compareOrder()
	var rest []string
	for _, m := range []map[string]float64{o.values, n.values} {
		for k := range m {
			if !slices.Contains(order, k) && !slices.Contains(rest, k) {
				rest = append(rest, k)
			}
		}
	}
	slices.Sort(rest)
	for _, field := range append(order, rest...) {
		ov, hasOld := o.values[field]
		nv, hasNew := n.values[field]
		if !hasOld && !hasNew {
			continue
		}
		row := CompareRow{Field: field, Old: ov, New: nv, HasOld: hasOld, HasNew: hasNew, DeltaPct: math.NaN()}
		if hasOld && hasNew && ov != 0 {
			row.DeltaPct = (nv - ov) / math.Abs(ov) * 100
		}
		row.Verdict = verdict(row, o.spreads, n.spreads)
		c.Rows = append(c.Rows, row)
	}
	return c, nil
}

// verdict judges a change by the runs' spreads: beyond both, when the
// change is larger than each run's max - min. Only the figures of the
// table (Result.fields) have rounds.
func verdict(row CompareRow, olds, news map[string]Spread) string {
	if !row.HasOld || !row.HasNew || !isFigure(row.Field) {
		return ""
	}
	os, ns := olds[row.Field], news[row.Field]
	if os.N < 2 || ns.N < 2 {
		return VerdictNoSpread
	}
	change := math.Abs(row.New - row.Old)
	if change > os.Width() && change > ns.Width() {
		return VerdictBeyond
	}
	return VerdictWithin
}

func isFigure(field string) bool {
	return slices.ContainsFunc((Result{}).fields(), func(f figure) bool { return f.name == field })
}

// WriteComparison prints the comparison: one line per figure (field, old,
// new, change, verdict), then each run's warnings.
func WriteComparison(w io.Writer, c Comparison) error {
	fmt.Fprintf(w, "old: schema version %d; new: schema version %d\n", c.OldVersion, c.NewVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "field\told\tnew\tdelta\tchange vs the runs' spread")
	for _, r := range c.Rows {
		old, nw, delta := "-", "-", "-"
		if r.HasOld {
			old = formatNumber(r.Old)
		}
		if r.HasNew {
			nw = formatNumber(r.New)
		}
		if !math.IsNaN(r.DeltaPct) {
			delta = fmt.Sprintf("%+.1f%%", r.DeltaPct)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Field, old, nw, delta, r.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ws := range []struct {
		run string
		ws  []string
	}{{"old", c.OldWarnings}, {"new", c.NewWarnings}} {
		for _, warn := range ws.ws {
			if _, err := fmt.Fprintf(w, "%s run: WARNING: %s\n", ws.run, warn); err != nil {
				return err
			}
		}
	}
	return nil
}

// formatNumber is a figure without its unit: whole above 100 or when it is
// a count, else 2 or 3 decimals.
func formatNumber(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
