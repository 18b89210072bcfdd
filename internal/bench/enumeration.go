package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// enumeration measures whether the time of a wrong password tells a
// registered NIR from an unknown one (issue 19). Accounts are imported by
// one commands instance, which then stops; a new instance (cold caches, as
// for most of a large portal's accounts) gets one wrong password per NIR,
// registered and unknown interleaved in random order, one request at a
// time. The figure is the probability that a registered NIR's reply is
// the slower of a random (registered, unknown) pair, ties counting half
// (the area under the ROC curve of a timing classifier; 0.5 is blind). The
// same is measured with the response floor off, to show what the equal
// work alone achieves.
func (r *runner) enumeration(ctx context.Context) error {
	n := r.sizes.EnumerationNIRs
	_, stop, err := r.startCommands(r.opts.Policy)
	if err != nil {
		return err
	}
	c, err := r.newClient(1)
	if err != nil {
		stop()
		return err
	}
	accs, err := r.importAccounts(ctx, c, 2*n, 16, r.opts.Policy.Argon2)
	stop()
	if err != nil {
		return fmt.Errorf("create accounts: %w", err)
	}
	d := &r.res.Details
	for _, withFloor := range []bool{false, true} {
		floor := time.Duration(-1)
		if withFloor {
			floor = 0 // the default: set from the measured hash
		}
		svc, stop, err := r.startCommandsWith(r.opts.Policy, func(cfg *commands.Config) { cfg.ResponseFloor = floor })
		if err != nil {
			return err
		}
		part := accs[:n]
		if withFloor {
			part = accs[n:]
		}
		reg, unk, err := r.timeWrongPasswords(ctx, c, part)
		stop()
		if err != nil {
			return err
		}
		auc := aucSlower(reg, unk)
		if withFloor {
			r.res.EnumerationAUC = auc
			d.EnumerationFloor = svc.ResponseFloor()
			d.EnumerationMedians = [2]time.Duration{percentile(reg, 0.5), percentile(unk, 0.5)}
		} else {
			d.EnumerationAUCNoFloor = auc
			d.EnumerationMediansNoFloor = [2]time.Duration{percentile(reg, 0.5), percentile(unk, 0.5)}
		}
		r.progress("enumeration (floor %v): registered median %s, unknown median %s: P(registered slower) = %.3f",
			withFloor, ms(percentile(reg, 0.5)), ms(percentile(unk, 0.5)), auc)
	}
	d.EnumerationNIRs = n
	return nil
}

// timeWrongPasswords sends one wrong password to each account's NIR and to
// as many fresh unknown NIRs, interleaved in random order, one at a time.
func (r *runner) timeWrongPasswords(ctx context.Context, c *client, accs []account) (reg, unk []time.Duration, err error) {
	type try struct {
		nir        string
		registered bool
	}
	var tries []try
	for _, a := range accs {
		tries = append(tries, try{a.nir, true}, try{r.nextNIR(), false})
	}
	rand.Shuffle(len(tries), func(i, j int) { tries[i], tries[j] = tries[j], tries[i] })
	for _, t := range tries {
		start := time.Now()
		rep, err := c.do(ctx, "login.password", body{RequestID: requestID(), Channel: "web", NIR: t.nir, Password: "pas-le-bon-mot"})
		took := time.Since(start)
		if err != nil {
			return nil, nil, err
		}
		if rep.OK || rep.Error.Code != domain.CodeInvalidCredentials {
			return nil, nil, fmt.Errorf("wrong password on a fresh NIR: got %+v", rep)
		}
		if t.registered {
			reg = append(reg, took)
		} else {
			unk = append(unk, took)
		}
	}
	return reg, unk, nil
}

// aucSlower is P(a > b) + P(a == b)/2 over all pairs (Mann-Whitney U / n²).
func aucSlower(a, b []time.Duration) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	sb := slices.Clone(b)
	slices.Sort(sb)
	var u float64
	for _, x := range a {
		lo, _ := slices.BinarySearch(sb, x) // elements < x
		hi := lo
		for hi < len(sb) && sb[hi] == x {
			hi++
		}
		u += float64(lo) + float64(hi-lo)/2
	}
	return u / float64(len(a)*len(b))
}
