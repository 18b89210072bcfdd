package natsutil

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The test cluster forms, keeps an R3 stream through the loss of its
// leader, and an isolated node has no route left until healed: the proxies
// carry every route, and gossip opens none around them.
func TestClusterFailoverAndIsolation(t *testing.T) {
	start := time.Now()
	c := StartTestCluster(t, 3)
	t.Logf("formed in %s", time.Since(start))
	js, err := jetstream.New(c.Connect(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	c.WaitStream("S")
	if _, err := js.Publish(ctx, "s.1", []byte("one")); err != nil {
		t.Fatal(err)
	}
	leader := c.StreamLeader("S")
	t0 := time.Now()
	c.Shutdown(leader)
	c.WaitStream("S")
	t.Logf("new leader %d after %s", c.StreamLeader("S"), time.Since(t0))
	t0 = time.Now()
	c.Start(leader)
	c.WaitReady()
	c.WaitStream("S")
	t.Logf("restarted in %s", time.Since(t0))

	t0 = time.Now()
	c.Isolate(1)
	c.poll("isolated", 30*time.Second, func() error {
		for i := range c.Size() {
			rz, err := c.Server(i).Routez(nil)
			if err != nil {
				return err
			}
			for _, r := range rz.Routes {
				if i == 1 || r.RemoteName == "n1" {
					return fmt.Errorf("n%d still routes to %s", i, r.RemoteName)
				}
			}
		}
		return nil
	})
	c.Heal(1)
	c.WaitReady()
	c.WaitStream("S")
	t.Logf("isolated and healed in %s", time.Since(t0))
	// RestartAll is exercised by the commands' TestClusterRestartAll: it
	// waits for Raft elections, 4 to 9 s.
	st, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.GetLastMsgForSubject(ctx, "s.1"); err != nil || string(m.Data) != "one" {
		t.Fatalf("after it all: %v %v", m, err)
	}
}
