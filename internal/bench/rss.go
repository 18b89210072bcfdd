package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// peaks measures the peak resident memory of the process during each
// component's phases: before a phase the garbage of the previous one is
// returned to the system and the kernel's high-water mark (VmHWM) is reset
// (/proc/self/clear_refs, Linux 4.0+); after it VmHWM is read.
type peaks struct {
	byComponent map[string]float64
	base        map[string]float64 // resident at the start of the component's first phase
	startRSS    float64
	max         float64
}

func newPeaks() *peaks { return &peaks{byComponent: map[string]float64{}, base: map[string]float64{}} }

func (p *peaks) begin() {
	p.observe()
	runtime.GC()
	debug.FreeOSMemory()
	// Fails where /proc is not Linux's: VmHWM then spans the whole run.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	p.startRSS = statusMB("VmRSS:")
}

func (p *peaks) end(component string) {
	v := p.observe()
	if v > p.byComponent[component] {
		p.byComponent[component] = v
	}
	if _, ok := p.base[component]; !ok {
		p.base[component] = p.startRSS
	}
}

func (p *peaks) peak(component string) float64 { return p.byComponent[component] }

// baseline is what was resident when the component's first phase began
// (after a GC): the stack and what earlier phases left.
func (p *peaks) baseline(component string) float64 { return p.base[component] }

func (p *peaks) process() float64 {
	p.observe()
	return p.max
}

// observe reads the high-water mark, in MiB.
func (p *peaks) observe() float64 {
	v := highWaterMB()
	if v > p.max {
		p.max = v
	}
	return v
}

func highWaterMB() float64 { return statusMB("VmHWM:") }

// statusMB reads a field of /proc/self/status, in MiB.
func statusMB(field string) float64 { return statusFileMB("/proc/self/status", field) }

// statusFileMB reads a field of a /proc status file, in MiB.
func statusFileMB(path, field string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		// Not Linux: what the Go runtime holds from the system.
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.Sys) / (1 << 20)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line := s.Bytes()
		if !bytes.HasPrefix(line, []byte(field)) {
			continue
		}
		f := bytes.Fields(line[len(field):])
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseFloat(string(f[0]), 64)
		if err != nil {
			break
		}
		return kb / 1024
	}
	return 0
}
