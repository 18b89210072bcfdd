package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// shortHistory is the number of past events of the "short" account: enough
// for a snapshot (the commands write one every 100 events).
const shortHistory = 200

// history compares one command (account.set_affiliation, one append) on an
// account with HistoryEvents past events to the same command on a new
// account (registered, nothing since), as BenchmarkCommandHistory does:
//
//   - cold: on a new commands instance, whose cache is empty, so the state
//     comes from the store: for the long account its snapshot and the
//     events after it (0 to 99 of them: the commands write a snapshot every
//     100 events), for a new account its one event. Cold is the honest
//     figure, the one a long history could slow down: it gives the ratio.
//     Every cold command on a new account is on another new account. An
//     account of shortHistory events, cold too, tells whether the cost
//     grows past the first snapshot.
//   - warm: the state cached, the same accounts again and again.
//
// Medians of HistoryRuns commands per kind; the kinds take turns, and each
// cold command starts after a GC so that no kind meets more collections.
func (r *runner) history(ctx context.Context) error {
	policy := r.opts.Policy
	policy.Argon2 = cheapArgon2 // nothing here hashes; a new instance starts at once
	setup, err := r.newCommands(policy, nil)
	if err != nil {
		return err
	}
	validated := true
	phc := hashOnce(cheapArgon2)
	register := func() (string, error) {
		nir := r.nextNIR()
		rep := decodeReply(setup.Handle(ctx, "account.import", mustJSON(body{Channel: "backoffice", NIR: nir,
			Email: "historique@exemple.fr", PasswordHash: phc, EmailValidated: &validated, Affiliation: "active"})))
		if !rep.OK {
			return "", fmt.Errorf("account.import: %s %+v", rep.Status, rep.Error)
		}
		r.remember(nir, rep.AccountID)
		return rep.AccountID, nil
	}
	short, err := register()
	if err != nil {
		return err
	}
	long, err := register()
	if err != nil {
		return err
	}
	news := make([]string, r.sizes.HistoryRuns)
	for i := range news {
		if news[i], err = register(); err != nil {
			return err
		}
	}
	_ = setup.Stop()
	t := time.Now()
	for acc, n := range map[string]int{short: shortHistory, long: r.sizes.HistoryEvents} {
		if err := r.appendHistory(ctx, acc, n); err != nil {
			return err
		}
	}
	r.progress("history: %d and %d events appended to two accounts in %s", shortHistory, r.sizes.HistoryEvents, time.Since(t).Round(time.Millisecond))

	flips := map[string]int{}
	command := func(svc *commands.Service, acc string) (time.Duration, error) {
		aff := "pending"
		if flips[acc]%2 == 1 {
			aff = "active"
		}
		flips[acc]++
		req := mustJSON(body{AccountID: acc, Affiliation: aff})
		t := time.Now()
		rep := decodeReply(svc.Handle(ctx, "account.set_affiliation", req))
		took := time.Since(t)
		if !rep.OK || rep.Status != contract.StatusAffiliationSet {
			return 0, fmt.Errorf("account.set_affiliation: %s %+v", rep.Status, rep.Error)
		}
		return took, nil
	}
	// The first command after the bulk load reads the whole history and
	// writes the snapshot (Stop waits for it), as after a migration.
	first, err := r.newCommands(policy, nil)
	if err != nil {
		return err
	}
	for _, acc := range []string{short, long} {
		if _, err := command(first, acc); err != nil {
			return err
		}
	}
	_ = first.Stop()

	const kNew, kShort, kLong = 0, 1, 2
	var cold [3][]time.Duration
	for i := range r.sizes.HistoryRuns {
		for j := range 3 {
			kind := (i + j) % 3
			acc := [3]string{news[i], short, long}[kind]
			svc, err := r.newCommands(policy, nil)
			if err != nil {
				return err
			}
			runtime.GC()
			d, err := command(svc, acc)
			_ = svc.Stop() // waits for a snapshot write, untimed
			if err != nil {
				return err
			}
			cold[kind] = append(cold[kind], d)
		}
	}
	warmSvc, err := r.newCommands(policy, nil)
	if err != nil {
		return err
	}
	defer func() { _ = warmSvc.Stop() }()
	var warm [3][]time.Duration
	for _, acc := range []string{short, long} {
		if _, err := command(warmSvc, acc); err != nil { // loads it
			return err
		}
	}
	for i := range r.sizes.HistoryRuns {
		for j := range 2 {
			kind := kShort + (i+j)%2
			d, err := command(warmSvc, [3]string{"", short, long}[kind])
			if err != nil {
				return err
			}
			warm[kind] = append(warm[kind], d)
		}
	}
	d := &r.res.Details
	d.HistoryColdNew, d.HistoryColdShort, d.HistoryCold10k = median(cold[kNew]), median(cold[kShort]), median(cold[kLong])
	d.HistoryWarmShort, d.HistoryWarm10k = median(warm[kShort]), median(warm[kLong])
	r.res.History10kVsFresh = float64(d.HistoryCold10k) / float64(d.HistoryColdNew)
	r.progress("history: cold %s new / %s with %d events / %s with %d events (ratio %.2f); warm %s / %s",
		us(d.HistoryColdNew), us(d.HistoryColdShort), shortHistory, us(d.HistoryCold10k), r.sizes.HistoryEvents,
		r.res.History10kVsFresh, us(d.HistoryWarmShort), us(d.HistoryWarm10k))
	return nil
}

// appendHistory appends n past logins to the account, as the commands
// would have (expected sequence and all).
func (r *runner) appendHistory(ctx context.Context, acc string, n int) error {
	seq, err := r.store.LastSeq(ctx, acc)
	if err != nil {
		return err
	}
	base := time.Now().Add(-time.Duration(n) * time.Minute)
	for i := range n {
		at := base.Add(time.Duration(i) * time.Minute)
		env := events.Wrap(acc, events.PasswordVerified{LoginID: events.NewID(at), At: at}, at, events.Metadata{Channel: "web"})
		// With a message id, so that an append retried after a timeout
		// is recorded once.
		var res eventstore.AppendResult
		err := retryTimeouts(ctx, &r.retries, func() (err error) {
			res, err = r.store.Append(ctx, acc, seq, env, env.ID)
			return err
		})
		if err != nil {
			return err
		}
		seq = res.Seq
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
