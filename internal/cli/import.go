package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

func newAccountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Back-office acts on accounts",
	}
	cmd.AddCommand(newImportCmd())
	for _, a := range adviserActs() {
		cmd.AddCommand(newAdviserCmd(a))
	}
	return cmd
}

type importOptions struct {
	concurrency int
	timeout     time.Duration
}

// importColumns are the CSV columns, required unless marked optional.
var importColumns = map[string]bool{"nir": true, "email": true, "affiliation": true, "password_hash": true, "email_validated": false}

func newImportCmd() *cobra.Command {
	var o importOptions
	cmd := &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Create accounts from a CSV file, keeping their password hashes",
		Long: `Send one account.import command per row of a CSV file (FILE "-" reads
standard input). The header names the columns, in any order:

  nir,email,affiliation,password_hash[,email_validated]

password_hash is an argon2id or bcrypt PHC string ($argon2id$…, $2b$…): the
holder keeps the password and the service replaces the hash with a current
argon2id one at the first login (an argon2id hash holds commas: quote it,
"$argon2id$v=19$m=19456,t=2,p=1$…"). affiliation is active, pending or none;
email_validated is true or false (true when the column or the cell is empty).

Each refused row is reported with its line number, the service's error code
and its French message. An account that exists already (account_exists)
counts as already present, so running the same file again is harmless. The
last line counts the rows imported, already present and rejected.

Exit status: 0 when no row was rejected, 1 otherwise.`,
		Example: `  authctl account import comptes.csv
  authctl account import --concurrency 16 comptes.csv

  # comptes.csv
  nir,email,affiliation,password_hash,email_validated
  2690549588157,valerie@yahoo.fr,active,$2b$10$Vq0N2...,true`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.concurrency < 1 || o.concurrency > 256 {
				return usagef("--concurrency: %d is not between 1 and 256", o.concurrency)
			}
			return runImport(cmd, args[0], o)
		},
	}
	cmd.Flags().IntVar(&o.concurrency, "concurrency", 4, "requests in flight at once")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for each reply")
	return cmd
}

// importRow is one data row: its request, or why it cannot be sent.
type importRow struct {
	idx  int // 0-based order of the row, for reporting in file order
	line int
	body map[string]any
	bad  *replyError
}

type importResult struct {
	idx    int
	line   int
	status string // registered, reactivated, exists, rejected
	err    *replyError
	fatal  error
}

type importCounts struct{ imported, reactivated, exists, rejected int }

func runImport(cmd *cobra.Command, path string, o importOptions) error {
	var in io.Reader
	var total int64
	if path == "-" {
		in = cmd.InOrStdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
		if _, tty := terminal(cmd.ErrOrStderr()); tty {
			total = countRecords(path)
		}
	}
	r := csv.NewReader(bufio.NewReader(&boundedLines{r: in, max: maxImportLine}))
	r.TrimLeadingSpace = true
	r.ReuseRecord = false
	cols, err := readImportHeader(r)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}

	nc, prefix, err := connect(cmd, asBackoffice)
	if err != nil {
		return err
	}
	defer nc.Close()
	c := newClient(nc, prefix, "backoffice", o.timeout)

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	rows := make(chan importRow, o.concurrency)
	results := make(chan importResult, o.concurrency)
	var readErr error
	go func() {
		defer close(rows)
		readErr = readImportRows(ctx, r, cols, rows)
	}()
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for row := range rows {
				results <- importOne(ctx, c, row)
			}
		})
	}
	go func() { wg.Wait(); close(results) }()

	out := cmd.OutOrStdout()
	bar := newProgress(cmd.ErrOrStderr(), "import", total)
	var n importCounts
	var fatal error
	// Results come in any order; they are reported in the file's order.
	waiting := map[int]importResult{}
	next := 0
	for res := range results {
		bar.Add(1)
		waiting[res.idx] = res
		for {
			res, ok := waiting[next]
			if !ok {
				break
			}
			delete(waiting, next)
			next++
			switch {
			case res.fatal != nil:
				if fatal == nil {
					fatal = fmt.Errorf("ligne %d: %w", res.line, res.fatal)
					cancel() // the service cannot be reached: stop here
				}
			case res.status == "rejected":
				n.rejected++
				bar.Clear()
				fmt.Fprintf(out, "ligne %d: %s: %s\n", res.line, res.err.Code, res.err.Message)
			case res.status == "exists":
				n.exists++
			case res.status == "reactivated":
				n.reactivated++
				n.imported++
			default:
				n.imported++
			}
		}
	}
	bar.Done()
	summary := fmt.Sprintf("importés : %d, déjà présents : %d, rejetés : %d", n.imported, n.exists, n.rejected)
	if n.reactivated > 0 {
		summary += fmt.Sprintf(" (dont %d compte(s) désactivé(s) réactivé(s))", n.reactivated)
	}
	fmt.Fprintln(out, summary)
	if fatal != nil {
		return &exitError{code: 1, msg: fatal.Error() + " (import interrompu; relancer le même fichier est sans risque)"}
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return fmt.Errorf("%s: %w", path, readErr)
	}
	if n.rejected > 0 {
		return silentExit(1)
	}
	return nil
}

// readImportHeader reads the header line and maps each column to its index.
func readImportHeader(r *csv.Reader) (map[string]int, error) {
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty file: the first line must be the header nir,email,affiliation,password_hash[,email_validated]")
	}
	if err != nil {
		return nil, err
	}
	cols := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, known := importColumns[h]; !known {
			if len(h) > 40 {
				h = h[:40] + "…"
			}
			return nil, fmt.Errorf("line 1: unknown column %q (the header is nir,email,affiliation,password_hash[,email_validated])", h)
		}
		if _, dup := cols[h]; dup {
			return nil, fmt.Errorf("line 1: column %q appears twice", h)
		}
		cols[h] = i
	}
	for name, required := range importColumns {
		if _, ok := cols[name]; required && !ok {
			return nil, fmt.Errorf("line 1: missing column %q (the header is nir,email,affiliation,password_hash[,email_validated])", name)
		}
	}
	return cols, nil
}

// readImportRows turns each record into a request (or a local refusal).
func readImportRows(ctx context.Context, r *csv.Reader, cols map[string]int, rows chan<- importRow) error {
	for idx := 0; ; idx++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		row := importRow{idx: idx}
		var pe *csv.ParseError
		switch {
		case err == nil:
			row.line, _ = r.FieldPos(0)
			row.body, row.bad = importBody(rec, cols)
		case errors.As(err, &pe):
			row.line = pe.StartLine
			msg := fmt.Sprintf("ligne CSV illisible (%v)", pe.Err)
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				msg = fmt.Sprintf("la ligne a %d champs, l'en-tête en a %d", len(rec), len(cols))
				if len(rec) > len(cols) {
					msg += " (une empreinte argon2id contient des virgules : mettez-la entre guillemets)"
				}
			}
			row.bad = &replyError{Code: "invalid_csv", Message: msg}
		default:
			return err
		}
		select {
		case rows <- row:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func importBody(rec []string, cols map[string]int) (map[string]any, *replyError) {
	get := func(name string) string {
		if i, ok := cols[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	validated := true
	switch strings.ToLower(get("email_validated")) {
	case "", "true", "1", "oui", "o", "yes", "y":
	case "false", "0", "non", "n", "no":
		validated = false
	default:
		return nil, &replyError{Code: domain.CodeInvalidRequest,
			Message: fmt.Sprintf("Requête invalide : le champ « email_validated » doit valoir true ou false (et non %q).", get("email_validated"))}
	}
	return map[string]any{
		"nir": get("nir"), "email": get("email"), "affiliation": get("affiliation"),
		"password_hash": get("password_hash"), "email_validated": validated,
	}, nil
}

func importOne(ctx context.Context, c *client, row importRow) importResult {
	res := importResult{idx: row.idx, line: row.line}
	if row.bad != nil {
		res.status, res.err = "rejected", row.bad
		return res
	}
	if ctx.Err() != nil {
		res.fatal = ctx.Err()
		return res
	}
	rep, err := c.send(ctx, contract.CmdAccountImport, row.body)
	switch {
	case err != nil:
		res.fatal = err
	case rep.OK && rep.Status == contract.StatusReactivated:
		res.status = "reactivated"
	case rep.OK:
		res.status = "registered"
	case rep.Error.Code == domain.CodeAccountExists:
		res.status = "exists"
	default:
		res.status, res.err = "rejected", rep.Error
	}
	return res
}

// countRecords counts the data rows of a CSV file, for the progress bar.
func countRecords(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(&boundedLines{r: f, max: maxImportLine}))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	var n int64
	for {
		_, err := r.Read()
		if errors.Is(err, io.EOF) || errors.Is(err, errLineTooLong) {
			break
		}
		if err == nil {
			n++
		}
	}
	if n > 0 {
		n-- // the header
	}
	return n
}

// maxImportLine bounds a record of an import file (a line, or the lines a
// quoted field spans): a row is one account
// (NIR, email, a hash of at most 512 bytes, two short fields), and a request
// is at most 64 KiB anyway. Without it, one endless line would be read into
// memory whole (issue 11, kind 3: no value from outside sets an unbounded
// cost).
const maxImportLine = 64 << 10

// errLineTooLong: a line of the import file is longer than maxImportLine.
var errLineTooLong = fmt.Errorf("une ligne dépasse %d octets : ce n'est pas un fichier de comptes", maxImportLine)

// boundedLines passes r through and fails once a record grows past max
// bytes. A newline inside a quoted field does not end the record (CSV's
// escaped quote "" toggles twice, so it changes nothing).
type boundedLines struct {
	r        io.Reader
	max      int
	run      int   // bytes of the current record
	inQuotes bool  // inside a quoted field
	err      error // errLineTooLong, once met
}

// Read passes on the bytes before the one over the bound with the error, so
// what the CSV reader sees, and the error it reports, do not depend on how
// the file arrives (whole blocks or byte by byte); the error then stays,
// so that a CSV error on those bytes does not hide it.
func (b *boundedLines) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	for i, c := range p[:n] {
		switch {
		case c == '"':
			b.inQuotes = !b.inQuotes
		case c == '\n' && !b.inQuotes:
			b.run = 0
			continue
		}
		if b.run++; b.run > b.max {
			b.err = errLineTooLong
			return i, b.err
		}
	}
	return n, err
}
