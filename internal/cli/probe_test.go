package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// authctl probe is the components' container health check: its exit
// status is what docker reads.
func TestProbeExitStatus(t *testing.T) {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: nats not connected (reconnecting)\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}))
	defer srv.Close()

	run := func(args ...string) (int, string) {
		var out, errw strings.Builder
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errw)
		return code, out.String() + errw.String()
	}
	if code, out := run("probe", srv.URL+"/readyz"); code != 0 || out != "" {
		t.Errorf("ready: exit %d, output %q", code, out)
	}
	down.Store(true)
	if code, out := run("probe", srv.URL+"/readyz"); code != 1 || !strings.Contains(out, "503") || !strings.Contains(out, "nats not connected") {
		t.Errorf("not ready: exit %d, output %q", code, out)
	}
	if code, _ := run("probe"); code == 0 {
		t.Errorf("no URL: exit %d", code)
	}
}
