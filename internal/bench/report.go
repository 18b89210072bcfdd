package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteReport prints the table (field, value, target, met, the rounds'
// spread), the notes, the warnings and, with withJSON, the JSON object
// alone on the last line.
func WriteReport(w io.Writer, res Result, withJSON bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "field\tvalue\ttarget\tmet\trounds: min / median / max (n)")
	for _, r := range res.Rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Field, r.Value, r.Target, r.OK, r.Spread)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, n := range res.Notes() {
		fmt.Fprintln(w, n)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintln(w, "WARNING:", warn)
	}
	if !withJSON {
		return nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// MarshalJSON writes the figures, then each measured figure's spread as
// "<field>_rounds": {"min", "median", "max", "n"}, in the table's order.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // the fields without this method
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	b, err := json.Marshal(plain(r))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1]) // without its closing brace
	for _, f := range r.fields() {
		s, ok := r.Spreads[f.name]
		if !ok || s.N == 0 {
			continue
		}
		sb, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&buf, ",%q:%s", f.name+roundsSuffix, sb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// roundsSuffix names a figure's spread in the JSON.
const roundsSuffix = "_rounds"
