package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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
func (l *pausable) timedWindow(ctx context.Context, settle, d time.Duration) (n int64, took time.Duration, err error) {
	l.resume()
	n, took, err = window(ctx, settle, d, l.done.Load)
	l.pause()
	if err != nil {
		return 0, 0, err
	}
	return n, took, l.failed()
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
