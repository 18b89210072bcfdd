package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// pausable is a closed-loop load: workers goroutines each run step again
// and again while the load runs, and wait while it is paused, so that
// windows of it can alternate with windows of another measurement (its
// bound) in the same run. A step that counts is timed (lat) and counted
// (done); a step's error is a failure, counted and kept (the first).
type pausable struct {
	workers  int
	done     atomic.Int64
	failures atomic.Int64
	lat      latencies

	mu       sync.Mutex
	cond     *sync.Cond
	running  bool
	busy     int // workers in the middle of a step
	firstErr error

	cancel context.CancelFunc
	wg     sync.WaitGroup
	stopFn func()
}

// stepFunc is worker w's k-th step. counted false with no error: the step
// did no work to count (an append caught up after a conflict or a
// timeout). ctx is cancelled when the load stops; an error then is not a
// failure.
type stepFunc func(ctx context.Context, w, k int) (counted bool, err error)

// startPausable starts workers goroutines, paused; stopFn runs at stop,
// after they have returned.
func startPausable(ctx context.Context, workers int, step stepFunc, stopFn func()) *pausable {
	l := &pausable{workers: workers, stopFn: stopFn}
	l.cond = sync.NewCond(&l.mu)
	runCtx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for k := 0; ; k++ {
				if !l.enter(runCtx) {
					return
				}
				t := time.Now()
				counted, err := step(runCtx, w, k)
				switch {
				case runCtx.Err() != nil:
				case err != nil:
					l.failures.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = err
					}
					l.mu.Unlock()
				case counted:
					l.done.Add(1)
					l.lat.add(time.Since(t))
				}
				l.leave()
			}
		}()
	}
	return l
}

// enter waits until the load runs; false when it is stopped.
func (l *pausable) enter(ctx context.Context) bool {
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

func (l *pausable) leave() {
	l.mu.Lock()
	l.busy--
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *pausable) resume() {
	l.mu.Lock()
	l.running = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// pause stops new steps and waits for those in flight.
func (l *pausable) pause() {
	l.mu.Lock()
	l.running = false
	for l.busy > 0 {
		l.cond.Wait()
	}
	l.mu.Unlock()
}

// failed says whether too many steps failed so far (more than 1% of those
// that counted), with the first failure.
func (l *pausable) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.failures.Load(); f > 0 && f*100 > l.done.Load() {
		return fmt.Errorf("%d done, %d failed; the first: %v", l.done.Load(), f, l.firstErr)
	}
	return nil
}

// timedWindow runs the load for settle (not counted: the workers get back
// in their stride, so the steps in flight at either edge are neither lost
// nor counted twice), then counts the steps that end during d, and pauses
// it again. The rate is over exactly the time counted.
func (l *pausable) timedWindow(ctx context.Context, settle, d time.Duration) (span, error) {
	l.resume()
	if err := sleep(ctx, settle); err != nil {
		l.pause()
		return span{}, err
	}
	c0, t0, cpu0 := l.done.Load(), time.Now(), processCPU()
	err := sleep(ctx, d)
	sp := span{n: l.done.Load() - c0, took: time.Since(t0), cpu: processCPU() - cpu0}
	l.pause()
	if err != nil {
		return span{}, err
	}
	return sp, l.failed()
}

func (l *pausable) stop() {
	l.cancel()
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
	l.wg.Wait()
	if l.stopFn != nil {
		l.stopFn()
	}
}

// span is what one timed window did: the steps counted, the wall time, and
// the CPU time of the whole process meanwhile (every component runs in it:
// see docs/bench.md).
type span struct {
	n    int64
	took time.Duration
	cpu  time.Duration
}

// spans are the windows of one measurement, and their sum.
type spans struct {
	all    span
	rounds []span
}

func (s *spans) add(x span) {
	s.all.n, s.all.took, s.all.cpu = s.all.n+x.n, s.all.took+x.took, s.all.cpu+x.cpu
	s.rounds = append(s.rounds, x)
}

// rate is the steps per second over every window.
func (s *spans) rate() float64 { return rate(s.all.n, s.all.took) }

// perCPU is the steps per CPU-second of the process over every window.
func (s *spans) perCPU() float64 { return rate(s.all.n, s.all.cpu) }

// cores is the CPU time the process had per second of the windows: what
// share of the machine it got (GOMAXPROCS at most, less when other work
// takes the cores).
func (s *spans) cores() float64 {
	if s.all.took <= 0 {
		return 0
	}
	return s.all.cpu.Seconds() / s.all.took.Seconds()
}

// rates are each window's steps per second; perCPUs its steps per
// CPU-second.
func (s *spans) rates() []float64 {
	var out []float64
	for _, x := range s.rounds {
		out = append(out, rate(x.n, x.took))
	}
	return out
}

func (s *spans) perCPUs() []float64 {
	var out []float64
	for _, x := range s.rounds {
		out = append(out, rate(x.n, x.cpu))
	}
	return out
}

func (s *spans) last() float64 {
	if len(s.rounds) == 0 {
		return 0
	}
	x := s.rounds[len(s.rounds)-1]
	return rate(x.n, x.took)
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
