package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// importOutcome is what the import reader makes of a file: the header's
// columns, each row's request or local refusal, and the error that ended
// the reading, if any.
type importOutcome struct {
	cols map[string]int
	rows []importRow
	err  error
}

// readImport reads a file as runImport does, with records bounded at max
// bytes, from r as given (the target also reads it one byte at a time).
func readImport(r io.Reader, max int) importOutcome {
	cr := csv.NewReader(bufio.NewReader(&boundedLines{r: r, max: max}))
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false
	cols, err := readImportHeader(cr)
	if err != nil {
		return importOutcome{err: err}
	}
	out := importOutcome{cols: cols}
	rows := make(chan importRow)
	done := make(chan error, 1)
	go func() { done <- readImportRows(context.Background(), importInput{csv: cr}, cols, rows); close(rows) }()
	for row := range rows {
		out.rows = append(out.rows, row)
	}
	out.err = <-done
	return out
}

// FuzzImportCSV: the import file reader (boundedLines, the CSV reader,
// readImportHeader, readImportRows and importBody) never panics on any
// file; the outcome does not depend on how the file arrives (all at once
// or one byte at a time); no record over the bound gets through; each row
// is either a request with exactly the import's fields, trimmed, or a
// local refusal; the rows come in file order.
func FuzzImportCSV(f *testing.F) {
	const bc = "$2a$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	for _, s := range []string{
		"nir,email,affiliation,password_hash,email_validated\n1840375123456,valerie@yahoo.fr,active," + bc + ",true\n",
		"\ufeffNIR , Email,affiliation,password_hash\r\n1 84 03 75 123 456,a@b.fr,pending,\"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA\"\r\n",
		"email,nir,password_hash,affiliation,email_validated\na@b.fr,2840375123456,x,active,non\nb@c.fr,2840375123457,x,active,peut-être\n",
		"nir,email,affiliation,password_hash\n1,2,3\n1,2,3,4,5\n", "nir,email,affiliation,password_hash\n\"open quote,,,\n",
		"nir,email,affiliation,password_hash\n\"multi\nline\",a@b.fr,active,x\n", "nir,nir,email,affiliation,password_hash\n",
		"nir,email,affiliation\n", "nir,email,affiliation,password_hash,extra\n", "", "\n", "\ufeff", "\"", "\"\"\"",
		"nir,email,affiliation,password_hash\n" + strings.Repeat("1", 300) + ",a,b,c\n",
		"nir,email,affiliation,password_hash\n\"" + strings.Repeat("\"\"", 100) + "\",a,b,c\n",
		"nir,email,affiliation,password_hash\n\xff\xfe,a,b,c\n", "nir;email;affiliation;password_hash\n1;2;3;4\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		const max = 256 // small, so the fuzzer reaches the bound; runImport's is maxImportLine
		whole := readImport(strings.NewReader(string(file)), max)
		bytewise := readImport(iotest.OneByteReader(strings.NewReader(string(file))), max)
		if (whole.err == nil) != (bytewise.err == nil) || len(whole.rows) != len(bytewise.rows) ||
			errors.Is(whole.err, errLineTooLong) != errors.Is(bytewise.err, errLineTooLong) {
			t.Fatalf("%q read whole: %d rows, %v; one byte at a time: %d rows, %v", file, len(whole.rows), whole.err, len(bytewise.rows), bytewise.err)
		}
		if whole.err != nil && whole.cols == nil {
			return // the header is refused
		}
		for name, required := range importColumns {
			if _, ok := whole.cols[name]; required && !ok {
				t.Fatalf("header of %q accepted without %s", file, name)
			}
		}
		var end int64
		for i, row := range whole.rows {
			if row.idx != i {
				t.Fatalf("row %d has idx %d", i, row.idx)
			}
			// Where each row ends (the state file's resume point) moves
			// forward, stays in the file, and does not depend on how the
			// file arrives.
			if row.end <= end || row.end > int64(len(file)) || row.end != bytewise.rows[i].end {
				t.Fatalf("row %d of %q ends at %d (previous %d, bytewise %d, file %d bytes)", i, file, row.end, end, bytewise.rows[i].end, len(file))
			}
			end = row.end
			if row.bad != nil {
				if row.bad.Code == "" || row.bad.Message == "" {
					t.Fatalf("row %d: refusal without code or message: %+v", i, row.bad)
				}
				continue
			}
			f := row.fields
			size := 0
			for k, v := range map[string]string{"nir": f.NIR, "email": f.Email, "affiliation": f.Affiliation, "password_hash": f.PasswordHash} {
				if v != strings.TrimSpace(v) {
					t.Fatalf("row %d of %q: %s = %q", i, file, k, v)
				}
				size += len(v)
			}
			if size > max {
				t.Fatalf("row %d of %q: %d bytes of fields got past the %d-byte bound", i, file, size, max)
			}
			if _, err := json.Marshal(f); err != nil {
				t.Fatalf("row %d: fields do not encode: %v", i, err)
			}
		}
	})
}
