package projector

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The real binary, killed with SIGKILL while its batch transaction is open,
// three times: on restart nothing is lost or doubled, and a SIGTERM at the
// end stops it cleanly.
func TestSIGKILLInTheMiddleOfABatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/projector")
	}
	bin := filepath.Join(t.TempDir(), "projector")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ameli-auth/authsvc/cmd/projector").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b := newBus(t)
	s := newSim(70)
	accs := s.Accounts(80)
	const total = 6000
	b.produce(t, s, accs, total)
	url := newDB(t)
	watch := connect(t, url)
	ctx := context.Background()

	var logs bytes.Buffer
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "AUTH_NATS_URL="+b.srv.ClientURL(), "AUTH_DATABASE_URL="+url,
			"AUTH_PROJECTOR_BATCH=150", "AUTH_LOG_LEVEL=warn", "AUTH_DEV_CLOCK=")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	var last uint64
	for kill := 1; kill <= 3; kill++ {
		cmd := start()
		// Wait until the projector's session is inside a batch transaction
		// that follows some progress, then kill it there.
		deadline := time.Now().Add(20 * time.Second)
		for {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("kill %d: never caught a batch in flight\n%s", kill, logs.String())
			}
			var inTx bool
			err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE application_name LIKE 'authsvc-projector%' AND xact_start IS NOT NULL
				  AND (SELECT last_seq FROM auth.projector_checkpoint) > $1)`, int64(last)).Scan(&inTx)
			if err != nil {
				t.Fatal(err)
			}
			if inTx {
				break
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		last = checkpointOf(t, url)
		if last >= total {
			t.Fatalf("kill %d came after the end (checkpoint %d): make the stream longer", kill, last)
		}
		t.Logf("kill %d: SIGKILL in a batch transaction, checkpoint %d", kill, last)
	}
	cmd := start()
	waitCaughtUp(t, url, total, 60*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, logs.String())
	}
	if got, want := dumpTables(t, url), b.freshReplay(t); got != want {
		t.Fatalf("after three SIGKILLs: %s", diff(got, want))
	}
}
