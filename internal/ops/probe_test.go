package ops_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/ops"
)

// The container health check (`authctl probe`) passes exactly when the
// page's /readyz says ready, and says why otherwise.
func TestProbeFollowsReadyz(t *testing.T) {
	var down atomic.Bool
	s := ops.New(ops.Config{Component: "projector", Ping: func(context.Context) error {
		if down.Load() {
			return errors.New("connection refused to postgres://auth:pw@db")
		}
		return nil
	}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	if err := ops.Probe(context.Background(), srv.URL+"/readyz"); err != nil {
		t.Fatalf("ready page: %v", err)
	}
	down.Store(true)
	ops.ExpireChecks(s)
	err := ops.Probe(context.Background(), srv.URL+"/readyz")
	if err == nil {
		t.Fatal("probe passed while /readyz answers 503")
	}
	if msg := err.Error(); !strings.Contains(msg, "503") || !strings.Contains(msg, "not ready: postgres ping failed") {
		t.Errorf("the failure does not say the status and the reason: %v", err)
	}
	if strings.Contains(err.Error(), "pw@") {
		t.Errorf("the failure quotes the ping's error: %v", err)
	}
	// Liveness stays up meanwhile.
	if err := ops.Probe(context.Background(), srv.URL+"/healthz"); err != nil {
		t.Errorf("/healthz: %v", err)
	}
	if err := ops.Probe(context.Background(), srv.URL+"/nothing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a missing page: %v", err)
	}
}

func TestProbeRefusesWhatIsNotAPage(t *testing.T) {
	for _, raw := range []string{"", "127.0.0.1:9090/readyz", "https://127.0.0.1:9090/readyz", "http:///readyz", "file:///etc/passwd"} {
		if err := ops.Probe(context.Background(), raw); err == nil || !strings.Contains(err.Error(), "not an http://") {
			t.Errorf("Probe(%q) = %v, want a refused URL", raw, err)
		}
	}
}

func TestProbeFailsWithoutAnAnswer(t *testing.T) {
	// Nothing listens: a port just released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := ops.Probe(context.Background(), "http://"+addr+"/readyz"); err == nil {
		t.Error("probe passed with nothing listening")
	}

	// A page that never answers: the probe gives up at its deadline.
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ops.Probe(ctx, hung.URL+"/readyz"); err == nil || !strings.Contains(err.Error(), "no answer in time") {
		t.Errorf("a hung page: %v", err)
	}
}
