package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// ClusterProcess is one child process of a Cluster (nats-1, commands-2,
// web…): its command line and environment are fixed at StartCluster, so
// that Start after Kill or Stop runs the same program on the same ports
// and store. Its output goes to the cluster's output, each line prefixed
// with its name, and the last part of it is kept (Log).
type ClusterProcess struct {
	name     string
	bin      string
	args     []string
	env      []string
	readyURL string // answers 200 once the process is ready
	// pollEvery spaces the readiness checks: nats-server logs a warning
	// for each failed /healthz.
	pollEvery time.Duration
	opsURL    string // the page shown for it: ops page, or nats-server's monitoring

	c   *Cluster
	out *prefixWriter

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited; nil before the first start
	exitErr  error
	stopping bool // an exit now is asked for, not a crash
}

// Name is the process's name: nats-1, nats-2, nats-3, commands-1,
// commands-2, projector-1, projector-2, notifier or web.
func (p *ClusterProcess) Name() string { return p.name }

// OpsURL is the base URL of its ops page (/healthz, /readyz, /metrics),
// or for a nats node of its monitoring (/healthz, /jsz, /routez).
func (p *ClusterProcess) OpsURL() string { return p.opsURL }

// PID is the running process's id, 0 while it is down.
func (p *ClusterProcess) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running tells whether the process is running (started and not exited).
func (p *ClusterProcess) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exited()
}

func (p *ClusterProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log is the end of what the process wrote (its last 256 KiB), across its
// restarts.
func (p *ClusterProcess) Log() string { return p.out.tail() }

// Start starts the process, which must be down, and waits until it is
// ready (ready timeout of the cluster, or ctx).
func (p *ClusterProcess) Start(ctx context.Context) error {
	if err := p.spawn(); err != nil {
		return err
	}
	return p.WaitReady(ctx)
}

func (p *ClusterProcess) spawn() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exited() {
		return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = childProcAttr()
	// The output is copied by goroutines of os/exec: never wait on them
	// for long once the process has exited.
	cmd.WaitDelay = 5 * time.Second
	if err := p.c.spawner.start(cmd); err != nil {
		return fmt.Errorf("start %s (%s): %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr, p.stopping = cmd, done, nil, false
	go func() {
		err := cmd.Wait()
		p.out.flush()
		p.mu.Lock()
		p.exitErr = err
		asked := p.stopping
		p.mu.Unlock()
		if !asked {
			p.out.note(fmt.Sprintf("exited on its own (%v); Ctrl-C stops the others", exitText(err)))
		}
		close(done)
	}()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// WaitReady waits until the process answers its readiness URL (GET 200),
// and fails at once if it exits meanwhile, with the end of its log.
func (p *ClusterProcess) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.c.readyTimeout)
	defer cancel()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s was never started", p.name)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if last = getOK(ctx, client, p.readyURL); last == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (%v); its last lines:\n%s", p.name, exitText(p.exitErrLocked()), lastLines(p.Log(), 15))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last answer: %v)", p.name, ctx.Err(), last)
		case <-time.After(p.pollEvery): // polling, until ctx's deadline
		}
	}
}

func (p *ClusterProcess) exitErrLocked() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

func getOK(ctx context.Context, client *http.Client, url string) error {
	res, err := get(ctx, client, url)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, res.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Kill kills the process (SIGKILL: no clean stop, as a crash or an OOM
// kill) and waits until it has exited. A process already down is left so.
func (p *ClusterProcess) Kill() error {
	return p.signal(context.Background(), syscall.SIGKILL)
}

// Stop asks the process to stop (SIGTERM: every component and nats-server
// stop cleanly on it) and waits until it has; past ctx's deadline it is
// killed.
func (p *ClusterProcess) Stop(ctx context.Context) error {
	return p.signal(ctx, syscall.SIGTERM)
}

// Restart stops the process (SIGTERM) and starts it again, ready.
func (p *ClusterProcess) Restart(ctx context.Context) error {
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := p.Stop(stopCtx)
	cancel()
	if err != nil {
		return err
	}
	return p.Start(ctx)
}

func (p *ClusterProcess) signal(ctx context.Context, sig syscall.Signal) error {
	p.mu.Lock()
	if p.cmd == nil || p.exited() {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	proc, done := p.cmd.Process, p.done
	p.mu.Unlock()
	if err := proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.out.note("did not stop in time: killed")
	_ = proc.Kill()
	<-done
	return fmt.Errorf("%s did not stop on %v in time: killed", p.name, sig)
}

// spawner starts every child of a cluster from one goroutine locked to its
// OS thread. On Linux a child's parent-death signal (Pdeathsig) fires when
// the thread that forked it ends, not the process: Go may end a thread
// that ran other goroutines, which would stop children for nothing. The
// locked thread lives as long as the cluster.
type spawner struct {
	mu     sync.Mutex // held across a start, so close never races it
	closed bool
	reqs   chan spawnReq
	done   chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		defer close(s.done)
		// Unlocked at the end (the children are gone by then): a locked
		// goroutine that returns ends its thread.
		defer runtime.UnlockOSThread()
		for r := range s.reqs {
			r.err <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("the cluster is stopping")
	}
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	s.reqs <- r
	return <-r.err
}

func (s *spawner) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.reqs)
		<-s.done
	}
}

// prefixWriter writes a process's output to the cluster's output one whole
// line at a time, each prefixed with the process's name, and keeps its end.
type prefixWriter struct {
	prefix string
	outMu  *sync.Mutex // shared by the cluster's processes: lines never mix
	out    io.Writer

	mu      sync.Mutex
	partial []byte
	kept    []byte // the last keepBytes of output
}

const keepBytes = 256 << 10

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kept = append(w.kept, b...)
	if len(w.kept) > keepBytes {
		w.kept = append([]byte(nil), w.kept[len(w.kept)-keepBytes:]...)
	}
	w.partial = append(w.partial, b...)
	i := bytes.LastIndexByte(w.partial, '\n')
	if i < 0 {
		return len(b), nil
	}
	w.emit(w.partial[:i+1])
	w.partial = append(w.partial[:0], w.partial[i+1:]...)
	return len(b), nil
}

// emit writes complete lines; w.mu is held.
func (w *prefixWriter) emit(lines []byte) {
	var buf bytes.Buffer
	for line := range bytes.Lines(lines) {
		buf.WriteString(w.prefix)
		buf.Write(line)
	}
	w.outMu.Lock()
	_, _ = w.out.Write(buf.Bytes())
	w.outMu.Unlock()
}

// flush writes what is left of a last line without its newline.
func (w *prefixWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(append(w.partial, '\n'))
		w.partial = w.partial[:0]
	}
}

// note writes a line of authctl's own about the process.
func (w *prefixWriter) note(msg string) {
	_, _ = w.Write([]byte("[authctl] " + msg + "\n"))
}

func (w *prefixWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.kept)
}

func lastLines(s string, n int) string {
	lines := bytes.Split(bytes.TrimRight([]byte(s), "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
