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
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/commands"
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
	batch       int
	timeout     time.Duration
	state       string
	noState     bool
}

// importColumns are the CSV columns, required unless marked optional.
// The identity columns (issue 18) are optional, but come all six or not
// at all (identityColumns).
var importColumns = map[string]bool{"nir": true, "email": true, "affiliation": true, "password_hash": true, "email_validated": false,
	"given_name": false, "family_name": false, "birthdate": false, "gender": false, "birthplace": false, "birthcountry": false}

// identityColumns are the columns of the optional identity, in the order
// of account.import's identity object.
var identityColumns = []string{"given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"}

func newImportCmd() *cobra.Command {
	var o importOptions
	cmd := &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Create accounts from a CSV file, keeping their password hashes",
		Long: `Create an account per row of a CSV file (FILE "-" reads standard input).
The header names the columns, in any order:

  nir,email,affiliation,password_hash[,email_validated]

password_hash is an argon2id or bcrypt PHC string ($argon2id$…, $2b$…): the
holder keeps the password and the service replaces the hash with a current
argon2id one at the first login (an argon2id hash holds commas: quote it,
"$argon2id$v=19$m=19456,t=2,p=1$…"). affiliation is active, pending or none;
email_validated is true or false (true when the column or the cell is empty).

The holder's civil identity (OpenID Connect claims, docs/oidc-commands.md)
may come in six more columns, all six or none:

  given_name,family_name,birthdate,gender,birthplace,birthcountry

birthdate is YYYY-MM-DD, gender male or female, birthplace the INSEE
commune code (empty for a birth abroad), birthcountry the INSEE country
code (99100 for France). The service checks them against the NIR. A row
whose six cells are empty is imported without an identity.

Rows go in account.import_batch requests of --batch rows, --concurrency of
them in flight; the service decides each row as account.import would
(--batch 1 sends one account.import per row, for a service that does not
know account.import_batch). Each refused row is reported with its line
number, the service's error code and its French message. An account that
exists already (account_exists) counts as already present, so running the
same file again is harmless. A progress bar shows on a terminal; the
report counts the rows imported, already present and rejected, and the
rate.

Resuming: while it runs, the import keeps in FILE.csv.import-state (or
--state) how far the file is done, and removes it at the end. Run again
after a crash or Ctrl-C, it checks that the file's done part is unchanged
(SHA-256) and goes on after it; the rows sent but not yet recorded there
are met again and found present. No row creates two accounts: the NIR
index is the uniqueness check.

Exit status: 0 when no row was rejected, 1 otherwise.`,
		Example: `  authctl account import comptes.csv
  authctl account import --batch 1000 --concurrency 8 comptes.csv

  # comptes.csv
  nir,email,affiliation,password_hash,email_validated
  2690549588157,valerie@yahoo.fr,active,$2b$10$Vq0N2...,true`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.concurrency < 1 || o.concurrency > 256 {
				return usagef("--concurrency: %d is not between 1 and 256", o.concurrency)
			}
			if o.batch < 1 || o.batch > commands.MaxImportBatchRows {
				return usagef("--batch: %d is not between 1 and %d", o.batch, commands.MaxImportBatchRows)
			}
			return runImport(cmd, args[0], o)
		},
	}
	cmd.Flags().IntVar(&o.concurrency, "concurrency", 4, "requests in flight at once")
	cmd.Flags().IntVar(&o.batch, "batch", 500, fmt.Sprintf("rows per account.import_batch request, at most %d; 1: one account.import per row", commands.MaxImportBatchRows))
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for each reply")
	cmd.Flags().StringVar(&o.state, "state", "", "where to keep how far the import is done (default FILE.csv.import-state; none for standard input)")
	cmd.Flags().BoolVar(&o.noState, "no-state", false, "neither resume from nor keep a state file")
	return cmd
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
	some := 0
	for _, name := range identityColumns {
		if _, ok := cols[name]; ok {
			some++
		}
	}
	if some > 0 && some < len(identityColumns) {
		for _, name := range identityColumns {
			if _, ok := cols[name]; !ok {
				return nil, fmt.Errorf("line 1: missing column %q (the identity's columns come together: %s)", name, strings.Join(identityColumns, ","))
			}
		}
	}
	return cols, nil
}

// readImportRows turns each record into a row (or a local refusal). The
// reader starts after in.base rows, in.offset bytes and in.line lines of
// the file (all 0 unless resuming: importInput), so that rows carry the
// file's own order, lines and offsets.
func readImportRows(ctx context.Context, in importInput, cols map[string]int, rows chan<- importRow) error {
	r := in.csv
	for idx := in.base; ; idx++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		row := importRow{idx: idx, end: in.offset + r.InputOffset()}
		var pe *csv.ParseError
		switch {
		case err == nil:
			line, _ := r.FieldPos(0)
			row.line = in.line + line
			row.fields, row.bad = importFields(rec, cols)
		case errors.As(err, &pe):
			row.line = in.line + pe.StartLine
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

// importRowFields are a row's fields as account.import and each row of
// account.import_batch take them.
type importRowFields struct {
	NIR            string `json:"nir"`
	Email          string `json:"email"`
	PasswordHash   string `json:"password_hash"`
	EmailValidated bool   `json:"email_validated"`
	Affiliation    string `json:"affiliation"`
	// Identity is the holder's civil identity, when the row gives one.
	Identity *domain.Identity `json:"identity,omitempty"`
}

// size is about the bytes the row takes in a request's JSON.
func (f importRowFields) size() int {
	n := len(f.NIR) + len(f.Email) + len(f.PasswordHash) + len(f.Affiliation) + 100
	if id := f.Identity; id != nil {
		n += len(id.GivenName) + len(id.FamilyName) + len(id.Birthdate) + len(id.Gender) + len(id.Birthplace) + len(id.Birthcountry) + 120
	}
	return n
}

func importFields(rec []string, cols map[string]int) (importRowFields, *replyError) {
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
		return importRowFields{}, &replyError{Code: domain.CodeInvalidRequest,
			Message: fmt.Sprintf("Requête invalide : le champ « email_validated » doit valoir true ou false (et non %q).", get("email_validated"))}
	}
	f := importRowFields{NIR: get("nir"), Email: get("email"), Affiliation: get("affiliation"),
		PasswordHash: get("password_hash"), EmailValidated: validated}
	id := domain.Identity{GivenName: get("given_name"), FamilyName: get("family_name"), Birthdate: get("birthdate"),
		Gender: get("gender"), Birthplace: get("birthplace"), Birthcountry: get("birthcountry")}
	if id != (domain.Identity{}) {
		f.Identity = &id
	}
	return f, nil
}

// importOne sends one row as an account.import (--batch 1).
func importOne(ctx context.Context, c *client, row importRow) importResult {
	res := importResult{idx: row.idx, line: row.line, end: row.end}
	if ctx.Err() != nil {
		res.fatal = ctx.Err()
		return res
	}
	f := row.fields
	body := map[string]any{"nir": f.NIR, "email": f.Email, "affiliation": f.Affiliation,
		"password_hash": f.PasswordHash, "email_validated": f.EmailValidated}
	if f.Identity != nil {
		body["identity"] = f.Identity
	}
	rep, err := c.send(ctx, contract.CmdAccountImport, body)
	if err != nil {
		res.fatal = err
		return res
	}
	res.classify(rep.OK, rep.Status, rep.Error)
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
