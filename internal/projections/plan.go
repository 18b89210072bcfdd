package projections

import (
	"slices"
	"sort"
	"time"
)

// AccountChange is the net effect of a batch's CreateAccount and
// UpdateAccount statements on one account: since each sets absolute values,
// overlaying them in stream order gives the row that applying them one by
// one would give.
type AccountChange struct {
	AccountID string
	Create    bool  // the batch writes the whole row
	Set       Field // the columns to write (AllFields when Create)
	Row       AccountRow
	Seq       uint64 // the last event's sequence: the new version
	At        time.Time
	// LiftBlockIf: clear blocked_until and block_reason if the stored
	// reason is one of these (a LiftBlock the batch could not resolve in
	// memory). Columns in Set win over it: they were written after.
	LiftBlockIf []string
}

// Plan is a batch of statements arranged for set-based execution.
//
// Tables are independent of each other except trusted_devices, whose count
// lands in accounts: so device statements run first, in stream order (they
// depend on each other), then the folded account changes, then the counts,
// and the attempts, which only append, at any point.
type Plan struct {
	Devices  []Statement     // TrustDevice, ForgetDevices, EnrollBiometric, RevokeBiometrics, in stream order
	Accounts []AccountChange // one per account, by account id
	Counts   []string        // accounts whose trusted_devices to recount, sorted
	Attempts []Attempt       // in stream order
	// Fraud is what the attempts add to the fraud counters.
	Fraud FraudCounts
	// Changes are the credential changes, in stream order.
	Changes []RecordCredentialChange
	// OIDC are the OpenID Connect authorizations and token issuances, in
	// stream order.
	OIDC []RecordOIDC
}

// PlanBatch folds a batch's statements, given in stream order.
func PlanBatch(stmts []Statement) Plan {
	var f Folder
	for _, s := range stmts {
		f.Add(s)
	}
	return f.Plan()
}

// Folder folds statements into a Plan one at a time, in stream order, so
// that a batch can be built as its events arrive, without keeping them
// (the projector streams its batches: docs/projector.md#memory). The zero
// value is empty; Reset empties it and keeps its memory for the next batch.
type Folder struct {
	p      Plan
	idx    map[string]int
	counts map[string]bool
}

// Add folds one statement. It reports whether the statement brought an
// account the batch did not have yet (a new entry of Plan.Accounts), so the
// caller can account for the memory the batch holds.
func (f *Folder) Add(s Statement) (newAccount bool) {
	change := func(id string) *AccountChange {
		i, ok := f.idx[id]
		if !ok {
			if f.idx == nil {
				f.idx = map[string]int{}
			}
			i = len(f.p.Accounts)
			f.idx[id] = i
			f.p.Accounts = append(f.p.Accounts, AccountChange{AccountID: id})
			newAccount = true
		}
		return &f.p.Accounts[i]
	}
	switch s := s.(type) {
	case CreateAccount:
		c := change(s.AccountID)
		// The whole row is written: nothing left to lift.
		*c = AccountChange{AccountID: s.AccountID, Create: true, Set: AllFields, Row: s.Row, Seq: s.Seq, At: s.At}
	case UpdateAccount:
		c := change(s.AccountID)
		c.Row.Overlay(s.Row, s.Set)
		c.Set |= s.Set
		c.Seq, c.At = s.Seq, s.At
	case LiftBlock:
		c := change(s.AccountID)
		switch {
		case c.Set.Has(FieldBlockReason | FieldBlockedUntil):
			// The batch knows the reason at this point: decide now.
			if c.Row.BlockReason == s.Reason {
				c.Row.BlockedUntil, c.Row.BlockReason = time.Time{}, ""
			}
		case !slices.Contains(c.LiftBlockIf, s.Reason):
			c.LiftBlockIf = append(c.LiftBlockIf, s.Reason)
		}
	case InsertAttempt:
		f.p.Attempts = append(f.p.Attempts, s.Attempt)
		f.p.Fraud.Add(s.Attempt)
	case RecordCredentialChange:
		f.p.Changes = append(f.p.Changes, s)
	case RecordOIDC:
		f.p.OIDC = append(f.p.OIDC, s)
	case TrustDevice, ForgetDevices, EnrollBiometric, RevokeBiometrics:
		f.p.Devices = append(f.p.Devices, s)
	case CountDevices:
		if f.counts == nil {
			f.counts = map[string]bool{}
		}
		f.counts[s.AccountID] = true
	}
	return newAccount
}

// Accounts is the number of accounts folded so far.
func (f *Folder) Accounts() int { return len(f.p.Accounts) }

// Devices is the number of device statements folded so far.
func (f *Folder) Devices() int { return len(f.p.Devices) }

// Plan sorts what was folded into a Plan. The Plan shares the Folder's
// memory: it is valid until the next Add or Reset.
func (f *Folder) Plan() Plan {
	p := f.p
	sort.Slice(p.Accounts, func(i, j int) bool { return p.Accounts[i].AccountID < p.Accounts[j].AccountID })
	// The index no longer matches the sorted accounts: rebuild it, so the
	// Folder stays usable (Add after Plan).
	for i := range p.Accounts {
		f.idx[p.Accounts[i].AccountID] = i
	}
	p.Counts = p.Counts[:0]
	for id := range f.counts {
		p.Counts = append(p.Counts, id)
	}
	sort.Strings(p.Counts)
	f.p.Counts = p.Counts
	return p
}

// CountAttempt adds an attempt to the fraud counters only (Plan.Fraud), for
// a caller that writes the attempt's row itself (the projector's batch
// encodes it straight into its COPY payload) instead of through Add.
func (f *Folder) CountAttempt(a Attempt) { f.p.Fraud.Add(a) }

// Reset empties the Folder and keeps its memory.
func (f *Folder) Reset() {
	clear(f.p.Accounts) // drop the strings they point to
	clear(f.p.Devices)
	clear(f.p.Attempts)
	f.p.Accounts, f.p.Devices, f.p.Attempts, f.p.Counts = f.p.Accounts[:0], f.p.Devices[:0], f.p.Attempts[:0], f.p.Counts[:0]
	clear(f.p.Changes)
	f.p.Changes = f.p.Changes[:0]
	clear(f.p.OIDC)
	f.p.OIDC = f.p.OIDC[:0]
	f.p.Fraud.Reset()
	clear(f.idx)
	clear(f.counts)
}
