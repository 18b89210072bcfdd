package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteReport prints the table (field, value, target, met), the notes and,
// with withJSON, the JSON object alone on the last line.
func WriteReport(w io.Writer, res Result, withJSON bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "field\tvalue\ttarget\tmet")
	for _, r := range res.Rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Field, r.Value, r.Target, r.OK)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, n := range res.Notes() {
		fmt.Fprintln(w, n)
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
