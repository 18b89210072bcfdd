package bench

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type pendingLogin struct{ loginID, code string }

// otpAppend measures code verifications and raw appends, their bound, in
// alternating rounds, so that whatever else the machine does weighs on both
// alike; either can run alone (Options.Phases).
//
//   - otp: code verifications, which never hash, by OTPClients concurrent
//     clients. The pending logins (one per account: only the latest code
//     of an account is valid) are prepared first, on the same commands
//     instance, whose policy has cheap argon2id parameters so that set-up
//     does not take minutes; the verification path is the same whatever
//     the cost. A round verifies OTPVerifications/Rounds of them, as fast
//     as they go, and lasts what it lasts.
//   - append: raw appends with the expected last sequence (appenders), a
//     window as long as the verification round it is paired with (alone:
//     AppendTime/Rounds), after the writers are back in their stride.
//   - echo (with both): plain NATS request/reply round trips (echoLoad),
//     as many clients as the verifications, on the same client connections,
//     to a responder that sends a reply of a verification's size back at
//     once, in a window as long as the verification round, after the
//     append window: the hop a verification adds to its append. The
//     verification's whole bound is an append and a hop
//     (otp_verify_vs_append_echo_per_cpu).
//
// The order alternates (verifications first in even rounds, appends first
// in odd ones, which then take the previous verification round's length).
// A verification appends one event and does more: otp_verify_vs_append can
// exceed 1 only by noise, and the run warns when it does by more than the
// per-round ratios' noise. Then the open loop at P99Rate per second, alone,
// for the latency.
func (r *runner) otpAppend(ctx context.Context, doOTP, doAppend bool) error {
	s := r.sizes
	rounds := max(1, s.Rounds)
	var o *otpLoad
	if doOTP {
		var err error
		if o, err = r.prepareOTP(ctx); err != nil {
			return err
		}
		defer o.stop()
	}
	var ap *pausable
	if doAppend {
		var a *appenders
		ap, a = startAppenders(ctx, r.store, s.AppendClients)
		defer func() { r.retries.Add(a.retries.Load()) }()
		defer ap.stop()
		ap.resume()
		if err := sleep(ctx, s.Warmup); err != nil {
			return err
		}
		ap.pause()
	}
	var ep *pausable
	if doOTP && doAppend {
		var err error
		if ep, err = r.startEcho(ctx, o.c, s.OTPClients); err != nil {
			return err
		}
		defer ep.stop()
	}
	d := &r.res.Details
	var ver, app, echo spans
	pairLen := s.AppendTime / time.Duration(rounds) // the next append window's length
	verifyRound := func(round int) error {
		runtime.GC() // the previous window's garbage, untimed
		lo, hi := round*s.OTPVerifications/rounds, (round+1)*s.OTPVerifications/rounds
		sp, err := o.verifyAll(ctx, o.pending[lo:hi])
		if err != nil {
			return err
		}
		ver.add(sp)
		pairLen = sp.took
		return nil
	}
	appendRound := func() error {
		runtime.GC()
		sp, err := ap.timedWindow(ctx, s.Settle, pairLen)
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		app.add(sp)
		if ep == nil {
			return nil
		}
		runtime.GC()
		if sp, err = ep.timedWindow(ctx, s.Settle, pairLen); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		echo.add(sp)
		return nil
	}
	for round := range rounds {
		switch {
		case doOTP && doAppend && round%2 == 1:
			if err := appendRound(); err != nil {
				return err
			}
			if err := verifyRound(round); err != nil {
				return err
			}
		default:
			if doOTP {
				if err := verifyRound(round); err != nil {
					return err
				}
			}
			if doAppend {
				if err := appendRound(); err != nil {
					return err
				}
			}
		}
		r.progress("otp/append: round %d of %d: %.0f verifications/s, %.0f appends/s", round+1, rounds, ver.last(), app.last())
	}
	if doAppend {
		r.res.AppendPerS = app.rate()
		d.Appends, d.AppendCores = int(app.all.n), app.cores()
		r.rounds("append_per_s", app.rates())
		ds := ap.lat.all()
		r.progress("append: %.0f appends/s (%d in %s, %.2f cores), p99 %s (%d clients, one account each)",
			r.res.AppendPerS, app.all.n, app.all.took.Round(time.Millisecond), d.AppendCores, ms(percentile(ds, 0.99)), s.AppendClients)
	}
	if !doOTP {
		return nil
	}
	if failed := o.failures.Load(); failed*100 > int64(s.OTPVerifications) {
		return fmt.Errorf("%d of %d verifications failed; the first: %v", failed, s.OTPVerifications, o.firstErr())
	}
	r.res.OTPVerifyPerS = ver.rate()
	d.OTPCores = ver.cores()
	r.rounds("otp_verify_per_s", ver.rates())
	if doAppend {
		r.rounds("otp_verify_vs_append", perRoundRatios(ver.rates(), app.rates()))
		if app.perCPU() > 0 {
			r.res.OTPVerifyVsAppendPerCPU = ver.perCPU() / app.perCPU()
			r.rounds("otp_verify_vs_append_per_cpu", perRoundRatios(ver.perCPUs(), app.perCPUs()))
		}
	}
	if ep != nil && echo.perCPU() > 0 && app.perCPU() > 0 && ver.perCPU() > 0 {
		r.res.EchoPerS = echo.rate()
		d.Echoes, d.EchoCores = int(echo.all.n), echo.cores()
		r.rounds("echo_per_s", echo.rates())
		d.CPUPerVerify, d.CPUPerAppend, d.CPUPerEcho = perOp(ver.perCPU()), perOp(app.perCPU()), perOp(echo.perCPU())
		r.res.OTPVerifyVsAppendEchoPerCPU = float64(d.CPUPerAppend+d.CPUPerEcho) / float64(d.CPUPerVerify)
		var perRound []float64
		for i, v := range ver.perCPUs() {
			if i < len(app.rounds) && i < len(echo.rounds) {
				a, e := app.perCPUs()[i], echo.perCPUs()[i]
				if a > 0 && e > 0 && v > 0 {
					perRound = append(perRound, (1/a+1/e)/(1/v))
				}
			}
		}
		r.rounds("otp_verify_vs_append_echo_per_cpu", perRound)
	}
	ds := o.lat.all()
	d.OTPP50, d.OTPP99 = percentile(ds, 0.5), percentile(ds, 0.99)
	r.progress("otp: %.0f verifications/s (%d in %s, %.2f cores, %d clients), p50 %s, p99 %s",
		r.res.OTPVerifyPerS, ver.all.n, ver.all.took.Round(time.Millisecond), d.OTPCores, s.OTPClients, ms(d.OTPP50), ms(d.OTPP99))
	return r.openLoop(ctx, o)
}

// otpLoad is a commands instance with pending logins ready to verify.
type otpLoad struct {
	c       *client
	pending []pendingLogin
	clients int

	lat      latencies // of the full-speed verifications
	failures atomic.Int64
	errMu    sync.Mutex
	first    error

	stop func()
}

func (o *otpLoad) fail(err error) {
	o.failures.Add(1)
	o.errMu.Lock()
	if o.first == nil {
		o.first = err
	}
	o.errMu.Unlock()
}

func (o *otpLoad) firstErr() error {
	o.errMu.Lock()
	defer o.errMu.Unlock()
	return o.first
}

// prepareOTP starts the commands instance and prepares OTPVerifications
// plus the open loop's pending logins.
func (r *runner) prepareOTP(ctx context.Context) (_ *otpLoad, err error) {
	policy := r.opts.Policy
	policy.Argon2 = cheapArgon2
	_, stopSvc, err := r.startCommands(policy)
	if err != nil {
		return nil, err
	}
	cr, err := r.startCodeReader()
	if err != nil {
		stopSvc()
		return nil, err
	}
	o := &otpLoad{clients: r.sizes.OTPClients, stop: func() { cr.stop(); stopSvc() }}
	defer func() {
		if err != nil {
			o.stop()
		}
	}()
	if o.c, err = r.newClient(4); err != nil {
		return nil, err
	}
	s := r.sizes
	openLoop := int(float64(s.P99Rate) * s.P99Time.Seconds())
	total := s.OTPVerifications + openLoop
	t := time.Now()
	accs, err := r.importAccounts(ctx, o.c, total, 64, cheapArgon2)
	if err != nil {
		return nil, fmt.Errorf("create accounts: %w", err)
	}
	o.pending = make([]pendingLogin, total)
	err = parallel(ctx, total, 64, func(ctx context.Context, i int) error {
		loginID, code, err := startLogin(ctx, o.c, cr, accs[i])
		o.pending[i] = pendingLogin{loginID, code}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prepare pending logins: %w", err)
	}
	r.res.Details.OTPPrepared = total
	r.progress("otp: %d pending logins prepared in %s", total, time.Since(t).Round(time.Millisecond))
	return o, nil
}

// verifyAll verifies the pending logins at full speed with the load's
// clients: how many succeeded, the time they all took, and the process's
// CPU time meanwhile.
func (o *otpLoad) verifyAll(ctx context.Context, pending []pendingLogin) (span, error) {
	var ok atomic.Int64
	t, cpu0 := time.Now(), processCPU()
	err := parallel(ctx, len(pending), o.clients, func(ctx context.Context, i int) error {
		t := time.Now()
		if err := verify(ctx, o.c, pending[i].loginID, pending[i].code); err != nil {
			o.fail(err)
			return nil
		}
		o.lat.add(time.Since(t))
		ok.Add(1)
		return nil
	})
	return span{n: ok.Load(), took: time.Since(t), cpu: processCPU() - cpu0}, err
}

// openLoop measures the verifications' p99 at P99Rate per second, on the
// pending logins left after the full-speed rounds.
func (r *runner) openLoop(ctx context.Context, o *otpLoad) error {
	s := r.sizes
	d := &r.res.Details
	// Open loop: each request leaves at its scheduled time whatever the
	// previous ones do, and its latency counts from that time, so a stall
	// is not hidden by requests that were not sent meanwhile.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	rest := o.pending[s.OTPVerifications:]
	interval := time.Second / time.Duration(s.P99Rate)
	lats := make([]time.Duration, len(rest))
	var wg sync.WaitGroup
	start := time.Now()
	for i := range rest {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				wg.Wait()
				return err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := verify(ctx, o.c, rest[i].loginID, rest[i].code); err != nil {
				o.fail(err)
				lats[i] = -1
				return
			}
			lats[i] = time.Since(at)
		}()
	}
	sent := time.Since(start)
	wg.Wait()
	var okLats []time.Duration
	for _, l := range lats {
		if l >= 0 {
			okLats = append(okLats, l)
		}
	}
	d.OTPErrors = int(o.failures.Load())
	if len(okLats) == 0 || len(rest)-len(okLats) > len(rest)/100 {
		return fmt.Errorf("open loop: %d of %d verifications failed; the first: %v", len(rest)-len(okLats), len(rest), o.firstErr())
	}
	p99 := percentile(okLats, 0.99)
	r.res.OTPVerifyP99Ms = float64(p99) / float64(time.Millisecond)
	d.OpenLoopSent, d.OpenLoopP50 = len(rest), percentile(okLats, 0.5)
	if len(rest) > 1 {
		d.OpenLoopRate = float64(len(rest)-1) / sent.Seconds()
	}
	r.progress("otp: open loop %d at %.0f/s: p50 %s, p99 %s", len(rest), d.OpenLoopRate, ms(d.OpenLoopP50), ms(p99))
	return nil
}

// perOp is the CPU time of one step at rate steps per CPU-second.
func perOp(rate float64) time.Duration { return time.Duration(float64(time.Second) / rate) }

// echoSubject is where startEcho's responder listens: under the bench's
// own inbox prefix, so no command or event subject is touched.
const echoSubject = "_INBOX.authbench.echo"

// startEcho starts a responder on a connection of its own that answers
// each request at once with a reply of a verification's size (an
// `authenticated` reply is about 280 bytes), and clients workers that
// send it requests of a verification request's size (about 200 bytes)
// through c, as the verifications are sent: a pausable load, paused.
func (r *runner) startEcho(ctx context.Context, c *client, workers int) (*pausable, error) {
	nc, err := r.connect("authbench-echo")
	if err != nil {
		return nil, err
	}
	reply := bytes.Repeat([]byte("r"), 280)
	sub, err := nc.Subscribe(echoSubject, func(m *nats.Msg) { _ = m.Respond(reply) })
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("echo responder: %w", err)
	}
	req := bytes.Repeat([]byte("q"), 200)
	step := func(ctx context.Context, _, _ int) (bool, error) {
		nc := c.conns[c.next.Add(1)%uint64(len(c.conns))]
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		if _, err := nc.RequestWithContext(rctx, echoSubject, req); err != nil {
			if isTimeout(ctx, err) {
				c.retries.Add(1)
				return false, nil
			}
			return false, err
		}
		return true, nil
	}
	return startPausable(ctx, workers, step, func() { _ = sub.Unsubscribe(); nc.Close() }), nil
}
