package commands

import "time"

// workers runs each request on a goroutine that has run requests before.
// A request decodes JSON, decides and appends on a call stack deeper than
// a new goroutine's first stack: started afresh for each request, its
// stack grew (copied) several times per request, 9 % of the service's CPU
// in a code check (issue 17, BenchmarkVerifyCode's profile). A worker
// keeps its grown stack between requests. The service's in-flight slots
// (Config.MaxInFlight) bound the requests running at once, hence the busy
// workers; an idle worker ends after workerIdle, so a burst leaves no
// goroutines behind.
type workers struct {
	jobs chan func() // unbuffered: a send succeeds only when a worker is idle
}

// workerIdle is how long an idle worker waits for its next request.
const workerIdle = 10 * time.Second

func newWorkers() *workers { return &workers{jobs: make(chan func())} }

// run runs f on an idle worker, or on a new one when none is idle.
func (w *workers) run(f func()) {
	select {
	case w.jobs <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.jobs:
		case <-idle.C:
			return
		}
	}
}
