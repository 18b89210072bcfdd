package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/ameli-auth/authsvc/internal/secrets"
)

// hashLogin measures the bound and what reaches it, in alternating windows
// measured the same way, so that whatever else the machine does weighs on
// both alike:
//
//   - hash: argon2id with the policy's parameters on GOMAXPROCS goroutines
//     (as the commands' hashing pool runs it), the login clients idle;
//   - login: full web logins on every core: login.password (argon2id on the
//     commands' pool), login.otp.send, the code read from the stream,
//     login.otp.verify, over NATS, on a commands instance with the real
//     policy. Each client has its own accounts (a successful login clears
//     the code quota, so they are reused): no two logins race on one
//     account.
//
// Each round has one window of each, LoginTime/Rounds long, and the order
// alternates (hash first in even rounds, login first in odd ones), so a
// drift of the machine's load over the phase favours neither. Before each
// window the garbage of the previous one is collected (untimed), then its
// workers run for Settle before the count starts (pausable.timedWindow):
// the work the previous window left in flight (snapshot puts, the
// stream's flushes) runs there, not in the counted time, and the steps in
// flight at the edges are neither lost nor counted twice. A login costs
// one argon2id and more: login_vs_hash can exceed 1 only by noise, and the
// run warns when it does by more than the per-round ratios' noise
// (beatsBound). Either can run alone (Options.Phases).
func (r *runner) hashLogin(ctx context.Context, doHash, doLogin bool) error {
	s := r.sizes
	rounds := max(1, s.Rounds)
	per := s.LoginTime / time.Duration(rounds)
	var hashers, l *pausable
	if doHash {
		p := r.opts.Policy.Argon2
		hashers = startPausable(ctx, runtime.GOMAXPROCS(0), func(context.Context, int, int) (bool, error) {
			_ = secrets.HashPassword(benchPassword, p)
			return true, nil
		}, nil)
		defer hashers.stop()
	}
	if doLogin {
		var err error
		if l, err = r.startLoginLoad(ctx); err != nil {
			return err
		}
		defer l.stop()
		l.resume()
		if err := sleep(ctx, s.Warmup); err != nil {
			return err
		}
		l.pause()
	}
	var hash, login spans
	measure := func(load *pausable, into *spans) func() error {
		return func() error {
			runtime.GC() // the previous window's garbage, untimed
			sp, err := load.timedWindow(ctx, s.Settle, per)
			if err != nil {
				return err
			}
			into.add(sp)
			return nil
		}
	}
	for round := range rounds {
		var order []func() error
		if doHash {
			order = append(order, measure(hashers, &hash))
		}
		if doLogin {
			order = append(order, measure(l, &login))
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, w := range order {
			if err := w(); err != nil {
				return err
			}
		}
		r.progress("hash/login: round %d of %d: %.1f hashes/s, %.1f logins/s (so far %.1f and %.1f)", round+1, rounds,
			hash.last(), login.last(), hash.rate(), login.rate())
	}
	d := &r.res.Details
	if doHash {
		r.res.HashPerS = hash.rate()
		d.Hashes, d.HashCores = int(hash.all.n), hash.cores()
		r.rounds("hash_per_s", hash.rates())
		r.progress("hash: %.1f argon2id/s on %d goroutines (%d in %s, %.2f cores)", r.res.HashPerS, runtime.GOMAXPROCS(0),
			hash.all.n, hash.all.took.Round(time.Millisecond), d.HashCores)
	}
	if doLogin {
		r.res.LoginFlowsPerS = login.rate()
		ds := l.lat.all()
		d.LoginClients, d.LoginFlows, d.LoginErrors = l.workers, int(login.all.n), int(l.failures.Load())
		d.LoginP50, d.LoginP99 = percentile(ds, 0.5), percentile(ds, 0.99)
		d.LoginCores = login.cores()
		r.rounds("login_flows_per_s", login.rates())
		r.progress("login: %.1f flows/s (%d in %s, %.2f cores), p50 %s, p99 %s, %d errors",
			r.res.LoginFlowsPerS, login.all.n, login.all.took.Round(time.Millisecond), d.LoginCores, ms(d.LoginP50), ms(d.LoginP99), d.LoginErrors)
	}
	if doHash && doLogin {
		r.rounds("login_vs_hash", perRoundRatios(login.rates(), hash.rates()))
		if hash.perCPU() > 0 {
			r.res.LoginVsHashPerCPU = login.perCPU() / hash.perCPU()
			r.rounds("login_vs_hash_per_cpu", perRoundRatios(login.perCPUs(), hash.perCPUs()))
		}
	}
	return nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// startLoginLoad starts a commands instance with the run's policy and
// Concurrency login clients on it, paused: each step is one full web login
// on the client's own accounts (LoginAccounts each, taken in turn).
func (r *runner) startLoginLoad(ctx context.Context) (*pausable, error) {
	_, stopSvc, err := r.startCommands(r.opts.Policy)
	if err != nil {
		return nil, err
	}
	cr, err := r.startCodeReader()
	if err != nil {
		stopSvc()
		return nil, err
	}
	c, err := r.newClient(4)
	if err != nil {
		cr.stop()
		stopSvc()
		return nil, err
	}
	clients := r.opts.Concurrency
	accs, err := r.importAccounts(ctx, c, clients*r.sizes.LoginAccounts, 64, r.opts.Policy.Argon2)
	if err != nil {
		cr.stop()
		stopSvc()
		return nil, fmt.Errorf("create accounts: %w", err)
	}
	r.progress("login: %d accounts, %d clients", len(accs), clients)
	step := func(ctx context.Context, w, k int) (bool, error) {
		a := accs[w+clients*(k%r.sizes.LoginAccounts)]
		loginID, code, err := startLogin(ctx, c, cr, a)
		if err == nil {
			err = verify(ctx, c, loginID, code)
		}
		return err == nil, err
	}
	return startPausable(ctx, clients, step, func() { cr.stop(); stopSvc() }), nil
}
