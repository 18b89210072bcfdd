package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// importRow is one data row: its fields, or why it cannot be sent.
type importRow struct {
	idx    int   // 0-based order of the row in the file, for reporting in file order
	line   int   // the file's line where the row starts
	end    int64 // the file's byte offset just after the row
	fields importRowFields
	bad    *replyError
}

// importResult is what became of a row.
type importResult struct {
	idx    int
	line   int
	end    int64
	status string // registered, reactivated, exists, rejected; "" with fatal
	err    *replyError
	fatal  error // the row could not be done: the import stops
}

// classify reads a row's reply (account.import's, or one result of
// account.import_batch). An `unavailable` refusal is not the row's fate
// but the service's: it is fatal here, and the batch sender retries it
// before giving up.
func (r *importResult) classify(ok bool, status string, e *replyError) {
	switch {
	case ok && status == contract.StatusReactivated:
		r.status = "reactivated"
	case ok:
		r.status = "registered"
	case e == nil:
		r.fatal = errors.New("réponse sans erreur ni succès")
	case e.Code == domain.CodeAccountExists:
		r.status = "exists"
	case e.Code == domain.CodeUnavailable:
		r.fatal = fmt.Errorf("%s: %s", e.Code, e.Message)
	default:
		r.status, r.err = "rejected", e
	}
}

// importCounts are the rows done, by outcome.
type importCounts struct {
	Imported    int `json:"imported"`
	Reactivated int `json:"reactivated"` // among Imported
	Exists      int `json:"exists"`
	Rejected    int `json:"rejected"`
}

func (c importCounts) rows() int { return c.Imported + c.Exists + c.Rejected }

// importInput is where the rows are read from: after `base` rows of the
// file, `offset` bytes and `line` lines in (all 0 unless resuming).
type importInput struct {
	csv    *csv.Reader
	base   int
	offset int64
	line   int
}

func runImport(cmd *cobra.Command, path string, o importOptions) error {
	started := time.Now()
	errw := cmd.ErrOrStderr()
	var in io.Reader
	var file *os.File
	var total int64
	if path == "-" {
		in = cmd.InOrStdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in, file = f, f
		if _, tty := terminal(errw); tty {
			total = countRecords(path)
		}
	}
	r := newImportReader(in)
	cols, err := readImportHeader(r)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	input := importInput{csv: r}

	// The state file: resume after what an earlier run did, keep what
	// this one does.
	var st *importState
	var before importCounts
	if file != nil && !o.noState {
		statePath := o.state
		if statePath == "" {
			statePath = path + ".import-state"
		}
		st, err = openImportState(statePath, file)
		if err != nil {
			fmt.Fprintf(errw, "authctl: %v: l'import reprend au début du fichier\n", err)
		}
		if st.saved.Rows > 0 {
			if _, err := file.Seek(st.saved.Offset, io.SeekStart); err != nil {
				return err
			}
			input = importInput{csv: newImportReader(file), base: st.saved.Rows, offset: st.saved.Offset, line: st.saved.Line}
			before = st.saved.Counts
			fmt.Fprintf(cmd.OutOrStdout(), "reprise après la ligne %d : %d ligne(s) traitée(s) par une exécution précédente\n", st.saved.Line, st.saved.Rows)
		}
	}

	nc, prefix, err := connect(cmd, asBackoffice)
	if err != nil {
		return err
	}
	defer nc.Close()
	c := newClient(nc, prefix, "backoffice", o.timeout)

	// Ctrl-C (or SIGTERM) stops the import as a lost connection would: the
	// state file is written, the report printed. A second one kills.
	sigCtx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-sigCtx.Done(); stop() }()
	ctx, cancel := context.WithCancel(sigCtx)
	defer cancel()
	rows := make(chan importRow, o.batch)
	results := make(chan []importResult, o.concurrency)
	var readErr error
	go func() {
		defer close(rows)
		readErr = readImportRows(ctx, input, cols, rows)
	}()
	var wg sync.WaitGroup
	if o.batch == 1 {
		for range o.concurrency {
			wg.Go(func() {
				for row := range rows {
					if row.bad != nil {
						results <- []importResult{{idx: row.idx, line: row.line, end: row.end, status: "rejected", err: row.bad}}
						continue
					}
					results <- []importResult{importOne(ctx, c, row)}
				}
			})
		}
	} else {
		batches := make(chan []importRow)
		wg.Go(func() {
			defer close(batches)
			makeBatches(ctx, rows, o.batch, batches, results)
		})
		for range o.concurrency {
			wg.Go(func() {
				for b := range batches {
					results <- importBatch(ctx, c, b)
				}
			})
		}
	}
	go func() { wg.Wait(); close(results) }()

	out := cmd.OutOrStdout()
	bar := newProgress(errw, "import", total)
	bar.Start(int64(input.base))
	n := before
	var fatal error
	// Results come in any order; they are reported in the file's order,
	// and the state file moves past a row only once every row before it
	// is done.
	waiting := map[int]importResult{}
	next, done := input.base, importResult{end: input.offset, line: input.line}
	lastSave := time.Now()
	for batch := range results {
		bar.Add(int64(len(batch)))
		for _, res := range batch {
			waiting[res.idx] = res
		}
		for {
			res, ok := waiting[next]
			if !ok || fatal != nil {
				break
			}
			delete(waiting, next)
			switch {
			case res.fatal != nil:
				fatal = fmt.Errorf("ligne %d: %w", res.line, res.fatal)
				cancel() // the service cannot be reached: stop here
				continue
			case res.status == "rejected":
				n.Rejected++
				bar.Clear()
				fmt.Fprintf(out, "ligne %d: %s: %s\n", res.line, res.err.Code, res.err.Message)
			case res.status == "exists":
				n.Exists++
			case res.status == "reactivated":
				n.Reactivated++
				n.Imported++
			default:
				n.Imported++
			}
			next++
			done = res
		}
		if st != nil && time.Since(lastSave) >= time.Second {
			st.save(next, done.line, done.end, n, errw)
			lastSave = time.Now()
		}
	}
	bar.Done()
	complete := fatal == nil && ctx.Err() == nil && readErr == nil
	if st != nil {
		if complete {
			st.remove(errw)
		} else {
			st.save(next, done.line, done.end, n, errw)
		}
	}
	summary := fmt.Sprintf("importés : %d, déjà présents : %d, rejetés : %d", n.Imported, n.Exists, n.Rejected)
	if n.Reactivated > 0 {
		summary += fmt.Sprintf(" (dont %d compte(s) désactivé(s) réactivé(s))", n.Reactivated)
	}
	fmt.Fprintln(out, summary)
	elapsed := time.Since(started)
	thisRun := n.rows() - before.rows()
	fmt.Fprintf(out, "%d ligne(s) traitée(s) en %s, %.0f lignes/s\n", thisRun, elapsed.Round(time.Millisecond), float64(thisRun)/elapsed.Seconds())
	if fatal != nil {
		hint := " (import interrompu; relancer le même fichier est sans risque"
		if st != nil {
			hint += " et reprend où il s'est arrêté"
		}
		return &exitError{code: 1, msg: fatal.Error() + hint + ")"}
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return fmt.Errorf("%s: %w", path, readErr)
	}
	if err := ctx.Err(); err != nil {
		return &exitError{code: 1, msg: "import interrompu (" + err.Error() + ")"}
	}
	if n.Rejected > 0 {
		return silentExit(1)
	}
	return nil
}

// newImportReader reads an import file's records, each bounded.
func newImportReader(in io.Reader) *csv.Reader {
	r := csv.NewReader(bufio.NewReader(&boundedLines{r: in, max: maxImportLine}))
	r.TrimLeadingSpace = true
	r.ReuseRecord = false
	return r
}

// maxImportBatchBytes keeps a batch's body under the service's bound,
// with room for the fields around the rows.
const maxImportBatchBytes = commands.MaxImportBatchBytes - 4<<10

// makeBatches groups the rows to send in batches of at most size rows and
// maxImportBatchBytes, each sent as soon as it is full or as soon as no
// row is waiting (a slow reader or the file's end); a row refused before
// sending goes straight to results.
func makeBatches(ctx context.Context, rows <-chan importRow, size int, batches chan<- []importRow, results chan<- []importResult) {
	var b []importRow
	bytes := 0
	flush := func() bool {
		if len(b) == 0 {
			return true
		}
		select {
		case batches <- b:
			b, bytes = nil, 0
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		var row importRow
		var ok bool
		select {
		case row, ok = <-rows:
		default:
			if !flush() {
				return
			}
			row, ok = <-rows
		}
		if !ok {
			flush()
			return
		}
		if row.bad != nil {
			results <- []importResult{{idx: row.idx, line: row.line, end: row.end, status: "rejected", err: row.bad}}
			continue
		}
		if len(b) == size || bytes+row.fields.size() > maxImportBatchBytes {
			if !flush() {
				return
			}
		}
		b = append(b, row)
		bytes += row.fields.size()
	}
}

// importBatchRequest is the body of account.import_batch.
type importBatchRequest struct {
	RequestID string            `json:"request_id"`
	Channel   string            `json:"channel"`
	UserAgent string            `json:"user_agent"`
	Rows      []importRowFields `json:"rows"`
}

// importBatchReply is its reply, as far as authctl reads it.
type importBatchReply struct {
	OK      bool   `json:"ok"`
	Status  string `json:"status"`
	Results []struct {
		OK     bool        `json:"ok"`
		Status string      `json:"status"`
		Error  *replyError `json:"error"`
	} `json:"results"`
	Error *replyError `json:"error"`
}

// importBatchTries bounds the sends of a row the service answered
// `unavailable` (its time ran out, or a store failed).
const importBatchTries = 3

// importBatch sends rows as account.import_batch requests and returns
// their results. A request lost in transit is sent again with its
// request_id (client.request): the service answers it without deciding
// twice. Rows answered `unavailable` are sent again in a new request, up
// to importBatchTries times in all: a row that was done meanwhile is then
// found present.
func importBatch(ctx context.Context, c *client, rows []importRow) []importResult {
	out := make([]importResult, len(rows))
	pending := make([]int, len(rows)) // indexes in rows still to send
	for i := range rows {
		pending[i] = i
	}
	for try := 1; len(pending) > 0; try++ {
		req := importBatchRequest{Channel: "backoffice", UserAgent: userAgent, Rows: make([]importRowFields, len(pending))}
		for j, i := range pending {
			req.Rows[j] = rows[i].fields
		}
		req.RequestID = newRequestID()
		body, err := json.Marshal(req)
		if err != nil {
			return failAll(out, rows, pending, err)
		}
		msg, err := c.request(ctx, contract.CmdAccountImportBatch, body)
		if errors.Is(err, errNoResponders) {
			err = fmt.Errorf("%w (un service qui ne connaît pas account.import_batch : --batch 1)", err)
		}
		if err != nil {
			return failAll(out, rows, pending, err)
		}
		var rep importBatchReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			return failAll(out, rows, pending, fmt.Errorf("account.import_batch: unreadable reply: %w", err))
		}
		if !rep.OK || len(rep.Results) != len(pending) {
			e := fmt.Errorf("account.import_batch: %d results for %d rows", len(rep.Results), len(pending))
			if rep.Error != nil {
				e = fmt.Errorf("account.import_batch refusé : %s: %s", rep.Error.Code, rep.Error.Message)
			}
			return failAll(out, rows, pending, e)
		}
		var again []int
		for j, i := range pending {
			res := importResult{idx: rows[i].idx, line: rows[i].line, end: rows[i].end}
			got := rep.Results[j]
			res.classify(got.OK, got.Status, got.Error)
			out[i] = res
			if res.fatal != nil && try < importBatchTries {
				again = append(again, i)
			}
		}
		pending = again
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
				return failAll(out, rows, pending, ctx.Err())
			case <-time.After(time.Duration(try) * 500 * time.Millisecond): // a pause before sending again, not a wait for a condition
			}
		}
	}
	return out
}

// failAll sets the rows still pending as failed with err.
func failAll(out []importResult, rows []importRow, pending []int, err error) []importResult {
	for _, i := range pending {
		out[i] = importResult{idx: rows[i].idx, line: rows[i].line, end: rows[i].end, fatal: err}
	}
	return out
}
