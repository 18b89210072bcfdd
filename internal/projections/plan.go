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
}

// PlanBatch folds a batch's statements, given in stream order.
func PlanBatch(stmts []Statement) Plan {
	var p Plan
	idx := map[string]int{}
	counts := map[string]bool{}
	change := func(id string) *AccountChange {
		i, ok := idx[id]
		if !ok {
			i = len(p.Accounts)
			idx[id] = i
			p.Accounts = append(p.Accounts, AccountChange{AccountID: id})
		}
		return &p.Accounts[i]
	}
	for _, s := range stmts {
		switch s := s.(type) {
		case CreateAccount:
			c := change(s.AccountID)
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
			p.Attempts = append(p.Attempts, s.Attempt)
			p.Fraud.Add(s.Attempt)
		case RecordCredentialChange:
			p.Changes = append(p.Changes, s)
		case TrustDevice, ForgetDevices, EnrollBiometric, RevokeBiometrics:
			p.Devices = append(p.Devices, s)
		case CountDevices:
			counts[s.AccountID] = true
		}
	}
	sort.Slice(p.Accounts, func(i, j int) bool { return p.Accounts[i].AccountID < p.Accounts[j].AccountID })
	for id := range counts {
		p.Counts = append(p.Counts, id)
	}
	sort.Strings(p.Counts)
	return p
}
