package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// hashLogin measures the bound and what reaches it, in alternating windows
// so that whatever else the machine does weighs on both alike:
//
//   - hash: argon2id with the policy's parameters on GOMAXPROCS goroutines
//     (as the commands' hashing pool runs it), the login clients idle;
//   - login: full web logins on every core: login.password (argon2id on the
//     commands' pool), login.otp.send, the code read from the stream,
//     login.otp.verify, over NATS, on a commands instance with the real
//     policy. Each client has its own accounts (a successful login clears
//     the code quota, so they are reused): no two logins race on one
//     account. A login window starts once the clients are back in their
//     stride (settle), so the flows in flight are neither lost nor
//     counted twice.
//
// Either can run alone (Options.Phases).
func (r *runner) hashLogin(ctx context.Context, doHash, doLogin bool) error {
	s := r.sizes
	rounds := max(1, s.Rounds)
	var l *loginLoad
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
	var hashes, flows int64
	var hashTook, loginTook time.Duration
	for round := range rounds {
		if doHash {
			n, took, err := measureHash(ctx, r.opts.Policy.Argon2, s.HashTime/time.Duration(rounds))
			if err != nil {
				return err
			}
			hashes, hashTook = hashes+n, hashTook+took
		}
		if doLogin {
			l.resume()
			n, took, err := window(ctx, s.Settle, s.LoginTime/time.Duration(rounds), l.flows.Load)
			l.pause()
			if err != nil {
				return err
			}
			flows, loginTook = flows+n, loginTook+took
			if err := l.failed(); err != nil {
				return err
			}
		}
		r.progress("hash/login: round %d of %d: %.1f hashes/s, %.1f logins/s so far", round+1, rounds,
			rate(hashes, hashTook), rate(flows, loginTook))
	}
	d := &r.res.Details
	if doHash {
		r.res.HashPerS = rate(hashes, hashTook)
		d.Hashes = int(hashes)
		r.progress("hash: %.1f argon2id/s on %d goroutines (%d in %s)", r.res.HashPerS, runtime.GOMAXPROCS(0), hashes, hashTook.Round(time.Millisecond))
	}
	if doLogin {
		r.res.LoginFlowsPerS = rate(flows, loginTook)
		ds := l.lat.all()
		d.LoginClients, d.LoginFlows, d.LoginErrors = l.clients, int(flows), int(l.failures.Load())
		d.LoginP50, d.LoginP99 = percentile(ds, 0.5), percentile(ds, 0.99)
		r.progress("login: %.1f flows/s (%d in %s), p50 %s, p99 %s, %d errors",
			r.res.LoginFlowsPerS, flows, loginTook.Round(time.Millisecond), ms(d.LoginP50), ms(d.LoginP99), d.LoginErrors)
	}
	return nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// measureHash runs argon2id on GOMAXPROCS goroutines for d and counts the
// hashes over exactly the time they took.
func measureHash(ctx context.Context, p domain.Argon2Params, d time.Duration) (int64, time.Duration, error) {
	var done atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				_ = secrets.HashPassword(benchPassword, p)
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return done.Load(), time.Since(start), ctx.Err()
}

// loginLoad is the login clients, which can be paused between windows.
type loginLoad struct {
	clients  int
	flows    atomic.Int64
	failures atomic.Int64
	lat      latencies

	mu       sync.Mutex
	cond     *sync.Cond
	running  bool
	busy     int // clients in the middle of a flow
	firstErr error

	cancel context.CancelFunc
	wg     sync.WaitGroup
	stopFn func()
}

func (r *runner) startLoginLoad(ctx context.Context) (*loginLoad, error) {
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
	l := &loginLoad{clients: clients}
	l.cond = sync.NewCond(&l.mu)
	runCtx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	l.stopFn = func() { cr.stop(); stopSvc() }
	for i := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for k := 0; ; k++ {
				if !l.enter(runCtx) {
					return
				}
				a := accs[i+clients*(k%r.sizes.LoginAccounts)]
				t := time.Now()
				loginID, code, err := startLogin(runCtx, c, cr, a)
				if err == nil {
					err = verify(runCtx, c, loginID, code)
				}
				switch {
				case runCtx.Err() != nil:
				case err != nil:
					l.failures.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = err
					}
					l.mu.Unlock()
				default:
					l.flows.Add(1)
					l.lat.add(time.Since(t))
				}
				l.leave()
			}
		}()
	}
	return l, nil
}

// enter waits until the load runs; false when it is stopped.
func (l *loginLoad) enter(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.running && ctx.Err() == nil {
		l.cond.Wait()
	}
	if ctx.Err() != nil {
		return false
	}
	l.busy++
	return true
}

func (l *loginLoad) leave() {
	l.mu.Lock()
	l.busy--
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *loginLoad) resume() {
	l.mu.Lock()
	l.running = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// pause stops new flows and waits for those in flight.
func (l *loginLoad) pause() {
	l.mu.Lock()
	l.running = false
	for l.busy > 0 {
		l.cond.Wait()
	}
	l.mu.Unlock()
}

// failed says whether too many flows failed so far (more than 1%).
func (l *loginLoad) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.failures.Load(); f > 0 && f*100 > l.flows.Load() {
		return fmt.Errorf("%d logins, %d failed; the first: %v", l.flows.Load(), f, l.firstErr)
	}
	return nil
}

func (l *loginLoad) stop() {
	l.cancel()
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
	l.wg.Wait()
	l.stopFn()
}
