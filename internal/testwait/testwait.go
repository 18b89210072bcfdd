// Package testwait is how tests wait for the code under test: they poll a
// condition with a deadline, never sleep "long enough". A test that must
// show something did NOT happen waits for an observable proof that the code
// reached the point where it would have done it (a log line, a record, a
// delivery count), then asserts.
package testwait

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interval is how often For checks its condition.
const Interval = 10 * time.Millisecond

// For waits until ok holds, checking it every Interval, and fails the test
// if it does not within timeout.
func For(tb testing.TB, what string, timeout time.Duration, ok func() bool) {
	tb.Helper()
	Until(tb, timeout, func() error {
		if ok() {
			return nil
		}
		return fmt.Errorf("waiting for %s", what)
	})
}

// Until waits until check returns nil, calling it every Interval, and
// fails the test with its last error if it does not within timeout.
func Until(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s: %v", timeout, err)
		}
		time.Sleep(Interval) // polling: the condition is checked again until the deadline
	}
}

// Log records what the code under test logs (every level, as text lines),
// so that a test can wait until it says it reached a point.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Handler is a handler that writes to l.
func (l *Log) Handler() slog.Handler {
	return slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})
}

// Write appends one record (slog writes each in one call).
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Count is the number of lines that hold every one of parts.
func (l *Log) Count(parts ...string) int { return len(l.Lines(parts...)) }

// Lines are the lines that hold every one of parts, for a failure's
// message.
func (l *Log) Lines(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.buf.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}
