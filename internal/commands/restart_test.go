package commands_test

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// A NATS restart loses nothing: the service reconnects, its micro endpoints
// come back, the stream and the NIR index are on disk, and the rules go on
// counting from where they were.
func TestServiceRidesOverANATSRestart(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "bad-password"}), domain.CodeInvalidCredentials)
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "bad-password"}), domain.CodeInvalidCredentials)

	start := time.Now()
	h.Server = natsutil.RestartTestServer(t, h.Server)
	t.Logf("restart took %v", time.Since(start))
	// The restarted server's cleanup runs before the harness's: check the
	// schemas while it still runs.
	t.Cleanup(h.CheckSchemas)
	// Wait until the service answers again (a request it refuses at once).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.NC.Request(contract.Default.Command(contract.CmdLoginPassword), []byte(`{}`), 200*time.Millisecond); err == nil {
			t.Logf("answering again after %v", time.Since(start))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the service did not come back after the restart")
		}
	}
	// The third failure in a row still blocks: the count survived.
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "bad-password"}), domain.CodeAccountLocked)
	if n := count(h.History(acc), events.TypePasswordFailed); n != 3 {
		t.Fatalf("%d failures recorded across the restart", n)
	}
}
