package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A child of the local cluster does not outlive authctl: when authctl is
// killed (SIGKILL, no clean stop), Linux sends each child SIGTERM. Run here
// on this test binary as the parent, started again in a helper mode that
// starts one child the way the cluster does, says its pid, and waits.
func TestClusterChildrenStopWhenAuthctlIsKilled(t *testing.T) {
	if os.Getenv("AUTH_TEST_CLUSTER_PARENT") == "1" {
		clusterParentHelper()
		return
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestClusterChildrenStopWhenAuthctlIsKilled$")
	parent.Env = append(os.Environ(), "AUTH_TEST_CLUSTER_PARENT=1")
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = parent.Process.Kill(); _ = parent.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the helper said no child pid: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "child "))
	if err != nil || child <= 0 {
		t.Fatalf("the helper said %q", line)
	}
	if !alive(child) {
		t.Fatalf("child %d is not running before its parent is killed", child)
	}
	defer func() {
		if alive(child) {
			p, _ := os.FindProcess(child)
			_ = p.Kill()
		}
	}()
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still runs 10 s after its parent was killed", child)
		}
		time.Sleep(20 * time.Millisecond) // polling, until the deadline above
	}
}

// clusterParentHelper starts `sleep` as a cluster child, prints its pid,
// and waits to be killed.
func clusterParentHelper() {
	c := &Cluster{spawner: newSpawner(), out: io.Discard, readyTimeout: time.Second}
	c.addProcess("sleeper", "/bin/sleep", []string{"600"}, nil, "", "")
	p := c.Process("sleeper")
	if err := p.spawn(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("child %d\n", p.PID())
	time.Sleep(time.Hour) // until the test kills this process
}

// alive tells whether pid runs: not gone, not a zombie waiting for a
// parent (a container's first process may never reap it).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold spaces, the state follows its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
