package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// fssExpiry is how long nats-server keeps a file block's per-subject state
// (mb.fss) after the block's last activity: defaultFssExpiration in the
// pinned server's filestore.go (2 minutes, not configurable in 2.15). A
// restart loads it for the blocks it recovers, and so does every write and
// cold read: the heap does not show the per-account state alone before
// it has passed.
const fssExpiry = 2 * time.Minute

// settleMargin is added to the idle wait: the server drops the state on a
// timer of its own (the block cache's, every 10 s: defaultCacheBufferExpiration).
const settleMargin = 15 * time.Second

// settlePoll is the longest interval between two readings of the settling
// heap (a tenth of the idle time, at least 200 ms), and settleBound the
// longest the readings go on once the idle time has passed.
const (
	settlePoll  = 10 * time.Second
	settleBound = 5 * time.Minute
)

// StoreState is a stream (or KV bucket) of the server, as its info says.
type StoreState struct {
	Name     string `json:"name"`
	Msgs     uint64 `json:"msgs"`
	Bytes    uint64 `json:"bytes"`
	Subjects uint64 `json:"subjects"`
	// DiskBytes is its directory's allocated blocks (the server's store
	// of the global account: jetstream/$G/streams/<name>).
	DiskBytes int64 `json:"disk_bytes"`
}

// settleIdle is the idle time before a settled heap is read: o.SettleIdle,
// or by default the longer of the stream's duplicate window (the message
// ids of the last appends) and the server's subject state expiry, plus a
// margin for the server's timers.
func (s *scaleRun) settleIdle(window time.Duration) time.Duration {
	if s.o.SettleIdle != 0 {
		return s.o.SettleIdle
	}
	return max(window, fssExpiry) + settleMargin
}

// settledHeap waits until idle has passed since the last write or read
// (since), then reads nats-server's live heap (after a GC) every
// settlePoll until two readings in a row are within 1 % (or 1 MiB) of
// each other, for at most settleBound; it returns the last reading, the
// time it waited from the call, and whether the heap was stable. Each
// reading makes the server collect its garbage first. With a
// profile path, the server's heap profile (protobuf, go tool pprof) is
// written there after the last reading.
func (s *scaleRun) settledHeap(ctx context.Context, since time.Time, idle time.Duration, profile string) (mb float64, waited time.Duration, stable bool, err error) {
	t := time.Now()
	if d := time.Until(since.Add(idle)); d > 0 {
		s.progress("scale: waiting %s for the duplicate window and the per-block subject state to expire", d.Round(time.Second))
		if err := sleep(ctx, d); err != nil { // a deadline the server's timers set, not a condition to poll
			return 0, 0, false, err
		}
	}
	poll := min(settlePoll, max(idle/10, 200*time.Millisecond))
	prev := s.serverHeapMB()
	end := time.Now().Add(settleBound)
	for time.Now().Before(end) {
		if err := sleep(ctx, poll); err != nil { // the interval between two readings of a condition polled
			return 0, 0, false, err
		}
		v := s.serverHeapMB()
		if math.Abs(v-prev) <= max(1, prev/100) {
			mb, stable = v, true
			break
		}
		prev, mb = v, v
	}
	if !stable {
		mb = prev
	}
	if profile != "" {
		if err := s.saveHeapProfile(profile); err != nil {
			return mb, time.Since(t), stable, err
		}
	}
	return mb, time.Since(t), stable, nil
}

// saveHeapProfile writes the server's heap profile (its profiling
// endpoint, protobuf: go tool pprof -top -inuse_space <file>) to path.
func (s *scaleRun) saveHeapProfile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 5 * time.Minute}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", s.pport))
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// saveProfile writes the server's heap profile at n accounts, when, to
// the file profilePath names and records it in *path (nothing without
// ProfileDir).
func (s *scaleRun) saveProfile(n int, when string, path *string) error {
	f := s.profilePath(n, when)
	if f == "" {
		return nil
	}
	*path = f
	return s.saveHeapProfile(f)
}

// profilePath names a heap profile of the run, empty without ProfileDir.
func (s *scaleRun) profilePath(n int, when string) string {
	if s.o.ProfileDir == "" {
		return ""
	}
	return filepath.Join(s.o.ProfileDir, "nats-heap-"+strconv.Itoa(n)+"-"+when+".pb.gz")
}

// stores lists the server's streams (the KV buckets are streams KV_<name>)
// with their messages, bytes and subjects, by name.
func (s *scaleRun) stores(ctx context.Context) ([]StoreState, error) {
	var out []StoreState
	l := s.js.ListStreams(ctx)
	for info := range l.Info() {
		st := StoreState{Name: info.Config.Name, Msgs: info.State.Msgs, Bytes: info.State.Bytes, Subjects: info.State.NumSubjects}
		st.DiskBytes, _ = dirBytes(filepath.Join(s.storeDir, "jetstream", "$G", "streams", st.Name))
		out = append(out, st)
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("scale: list streams: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// storesLine prints stores as name msgs/subjects.
func storesLine(st []StoreState) string {
	parts := make([]string, 0, len(st))
	for _, x := range st {
		parts = append(parts, fmt.Sprintf("%s %d msgs, %d subjects, %.1f MB on disk", x.Name, x.Msgs, x.Subjects, float64(x.DiskBytes)/1e6))
	}
	return strings.Join(parts, "; ")
}
