package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress is a one-line progress bar on a terminal (standard error),
// redrawn at most every 100 ms: the count, the share of the total, the
// time and the rate. A nil *progress does nothing, so callers
// need not care whether there is a terminal.
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	fd     int
	label  string
	total  int64 // 0: unknown
	n      int64
	first  int64 // n when the count began (Start): the rate counts from there
	start  time.Time
	drawn  time.Time
	active bool // a bar is on the line
}

// newProgress returns a bar on w when w is a terminal, else nil.
func newProgress(w io.Writer, label string, total int64) *progress {
	f, ok := terminal(w)
	if !ok {
		return nil
	}
	return &progress{w: w, fd: int(f.Fd()), label: label, total: total, start: time.Now()}
}

// SetTotal changes the expected count (0: unknown).
func (p *progress) SetTotal(total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.total = total
	p.mu.Unlock()
}

// Add counts n more items done.
func (p *progress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += n
	if now := time.Now(); now.Sub(p.drawn) >= 100*time.Millisecond {
		p.drawLocked(now)
	}
}

// Clear removes the bar from its line, so another line can be printed on
// the same terminal; the next Add draws it again.
func (p *progress) Clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

// Done draws the final state and ends the line.
func (p *progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n > 0 {
		p.drawLocked(time.Now())
		fmt.Fprintln(p.w)
		p.active = false
	}
}

func (p *progress) clearLocked() {
	if p.active {
		fmt.Fprint(p.w, "\r\033[K")
		p.active = false
		p.drawn = time.Time{} // draw again at the next Add
	}
}

func (p *progress) drawLocked(now time.Time) {
	p.drawn = now
	width := 80
	if w, _, err := term.GetSize(p.fd); err == nil && w > 20 {
		width = w
	}
	elapsed := now.Sub(p.start).Truncate(time.Second)
	rate := ""
	if p.n > p.first && now.Sub(p.start) >= time.Second {
		rate = fmt.Sprintf(" %.0f/s", float64(p.n-p.first)/now.Sub(p.start).Seconds())
	}
	var line string
	if p.total > 0 {
		n := min(p.n, p.total)
		tail := fmt.Sprintf(" %d/%d %3d%% %s%s", p.n, p.total, n*100/p.total, elapsed, rate)
		barW := width - len(p.label) - len(tail) - 4
		if barW < 10 {
			barW = 10
		}
		fill := int(int64(barW) * n / p.total)
		line = p.label + " [" + strings.Repeat("=", fill) + strings.Repeat(" ", barW-fill) + "]" + tail
	} else {
		line = fmt.Sprintf("%s %d %s%s", p.label, p.n, elapsed, rate)
	}
	if len(line) >= width {
		line = line[:width-1]
	}
	fmt.Fprint(p.w, "\r"+line+"\033[K")
	p.active = true
}

// Start sets the count to n items done before this run (a resumed
// import's), from which the rate is counted.
func (p *progress) Start(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.n, p.first, p.start = n, n, time.Now()
	p.mu.Unlock()
}

// Set moves the count to n items done.
func (p *progress) Set(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.n = n
	p.mu.Unlock()
	p.Add(0)
}
