package commands

// Use case: account.import_batch, many imported accounts in one request
// (authctl account import), each row decided as account.import decides
// it alone.

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// Bounds of an account.import_batch request: its rows, and its body (under
// NATS's default max_payload of 1 MiB, with room for the headers). A row
// is about 200 bytes (a NIR, an address, a hash of about 100 bytes).
const (
	MaxImportBatchRows  = 1000
	MaxImportBatchBytes = 512 << 10
)

// importWindow is the number of imported rows one instance works on at
// once (its import workers), whatever the number of batches in flight:
// each row waits on two writes (the NIR index's create, then the account's
// first event), so this many rows' writes are in flight at once; the more
// there are, the more each read and write of the NATS connection carries,
// which matters most on a busy machine (on the shared 2-core test machine,
// 512 was at least as fast as 256 and 1,024, within the noise). Its memory
// is this many goroutines and rows.
const importWindow = 512

type importBatchRequest struct {
	Common
	Rows []importFields `json:"rows"`
}

// importBatch creates the accounts of up to MaxImportBatchRows rows,
// importWindow rows at a time across the instance, and replies with each
// row's outcome in the request's order (contract.ImportBatchReply). A row
// is checked and decided exactly as account.import decides one request:
// the same field checks and hash cost bounds, the NIR index's create as
// the uniqueness check, the registration appended with expected sequence
// 0; a new account skips the cold load (accounts.create) and is not put
// in the cache. The rows are not one transaction: a row refused does not
// stop the others, and a row answered `unavailable` (the request's time
// ran out first) may be sent again, as a retried account.import is.
//
// With a request_id, row i is the request "<key>.<i>" for idempotency: a
// retried batch (same body) is answered from what each row recorded, and
// two rows of one batch naming one NIR are two requests (the second is
// told account_exists).
func (s *Service) importBatch(ctx context.Context, data []byte) contract.Reply {
	var req importBatchRequest
	if err := decodeMax(data, &req, MaxImportBatchBytes); err != nil {
		return errorReply(err)
	}
	switch {
	case len(req.Rows) == 0:
		return errorReply(domain.InvalidRequest("rows", "est obligatoire"))
	case len(req.Rows) > MaxImportBatchRows:
		return errorReply(domain.InvalidRequest("rows", fmt.Sprintf("doit compter au plus %d lignes", MaxImportBatchRows)))
	}
	results := make([]contract.ImportResult, len(req.Rows))
	key := requestKey(ctx)
	s.importWorkers.Do(s.startImportWorkers)
	var wg sync.WaitGroup
	late := 0
	for i, row := range req.Rows {
		job := importJob{ctx: ctx, common: &req.Common, row: row, out: &results[i], done: &wg}
		if key != "" {
			job.ctx = withRequestKey(ctx, key+"."+strconv.Itoa(i))
		}
		wg.Add(1)
		select {
		case s.importJobs <- job:
		case <-ctx.Done():
			wg.Done()
			results[i] = importResult(errorReply(ctx.Err()))
			late++
		}
	}
	wg.Wait()
	if late > 0 {
		s.log.Warn("import batch: rows not started before the request's time ran out", "rows", late, "timeout", s.cfg.RequestTimeout)
	}
	return contract.ImportBatchReply{Done: contract.OK(contract.StatusImported), Results: results}
}

// importJob is a row of a batch handed to a worker.
type importJob struct {
	ctx    context.Context // the batch's, with the row's request key
	common *Common
	row    importFields
	out    *contract.ImportResult
	done   *sync.WaitGroup
}

// startImportWorkers starts the importWindow workers that import the rows
// of every batch, at the first batch: long-lived goroutines, whose stacks
// have grown once, rather than one new goroutine per row (whose stack
// would grow again through the JSON of each write and its ack: a tenth of
// the service's time in a bulk import). Stop ends them.
func (s *Service) startImportWorkers() {
	for range importWindow {
		s.importWG.Go(func() {
			for j := range s.importJobs {
				s.importRow(j)
			}
		})
	}
}

// importRow imports one row; a panic is the row's `unavailable`, never the
// service's end.
func (s *Service) importRow(j importJob) {
	defer j.done.Done()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "subject", contract.CmdAccountImportBatch, "panic", fmt.Sprint(p))
			*j.out = importResult(errorReply(fmt.Errorf("panic")))
		}
	}()
	*j.out = importResult(s.importOne(j.ctx, contract.CmdAccountImportBatch, j.common, j.row))
}

// importResult is a row's reply as a result of the batch.
func importResult(r contract.Reply) contract.ImportResult {
	switch r := r.(type) {
	case contract.AccountReply:
		return contract.ImportResult{OK: true, Status: r.Status, AccountID: r.AccountID}
	case contract.Failure:
		return contract.ImportResult{Error: r.Error}
	}
	return contract.ImportResult{Error: errorReply(fmt.Errorf("reply %T", r)).Error}
}
