package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type pendingLogin struct{ loginID, code string }

// otp measures code verifications, which never hash: at full speed with
// OTPClients concurrent clients, then open loop at P99Rate per second for
// the latency. The pending logins (one per account: only the latest code
// of an account is valid) are prepared first, on the same commands
// instance, whose policy has cheap argon2id parameters so that set-up does
// not take minutes; the verification path is the same whatever the cost.
func (r *runner) otp(ctx context.Context) error {
	policy := r.opts.Policy
	policy.Argon2 = cheapArgon2
	_, stop, err := r.startCommands(policy)
	if err != nil {
		return err
	}
	defer stop()
	cr, err := r.startCodeReader()
	if err != nil {
		return err
	}
	defer cr.stop()
	c, err := r.newClient(4)
	if err != nil {
		return err
	}
	s := r.sizes
	openLoop := int(float64(s.P99Rate) * s.P99Time.Seconds())
	total := s.OTPVerifications + openLoop
	t := time.Now()
	accs, err := r.importAccounts(ctx, c, total, 64, cheapArgon2)
	if err != nil {
		return fmt.Errorf("create accounts: %w", err)
	}
	pending := make([]pendingLogin, total)
	err = parallel(ctx, total, 64, func(ctx context.Context, i int) error {
		loginID, code, err := startLogin(ctx, c, cr, accs[i])
		pending[i] = pendingLogin{loginID, code}
		return err
	})
	if err != nil {
		return fmt.Errorf("prepare pending logins: %w", err)
	}
	d := &r.res.Details
	d.OTPPrepared = total
	r.progress("otp: %d pending logins prepared in %s", total, time.Since(t).Round(time.Millisecond))

	// Full speed.
	var lat latencies
	var failures atomic.Int64
	var firstErr error
	var errOnce sync.Once
	full := pending[:s.OTPVerifications]
	t = time.Now()
	err = parallel(ctx, len(full), s.OTPClients, func(ctx context.Context, i int) error {
		t := time.Now()
		if err := verify(ctx, c, full[i].loginID, full[i].code); err != nil {
			failures.Add(1)
			errOnce.Do(func() { firstErr = err })
			return nil
		}
		lat.add(time.Since(t))
		return nil
	})
	took := time.Since(t)
	if err != nil {
		return err
	}
	ok := len(full) - int(failures.Load())
	if failures.Load()*100 > int64(len(full)) {
		return fmt.Errorf("%d of %d verifications failed; the first: %v", failures.Load(), len(full), firstErr)
	}
	r.res.OTPVerifyPerS = float64(ok) / took.Seconds()
	ds := lat.all()
	d.OTPP50, d.OTPP99 = percentile(ds, 0.5), percentile(ds, 0.99)
	r.progress("otp: %.0f verifications/s (%d in %s, %d clients), p50 %s, p99 %s",
		r.res.OTPVerifyPerS, ok, took.Round(time.Millisecond), s.OTPClients, ms(d.OTPP50), ms(d.OTPP99))

	// Open loop: each request leaves at its scheduled time whatever the
	// previous ones do, and its latency counts from that time, so a stall
	// is not hidden by requests that were not sent meanwhile.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	rest := pending[s.OTPVerifications:]
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
			if err := verify(ctx, c, rest[i].loginID, rest[i].code); err != nil {
				failures.Add(1)
				errOnce.Do(func() { firstErr = err })
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
	d.OTPErrors = int(failures.Load())
	if len(okLats) == 0 || len(rest)-len(okLats) > len(rest)/100 {
		return fmt.Errorf("open loop: %d of %d verifications failed; the first: %v", len(rest)-len(okLats), len(rest), firstErr)
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
