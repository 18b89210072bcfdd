package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DevState is what a running `authctl dev` tells the other authctl
// commands of this machine, so that they find it without flags even when
// its nats-server took another port than 4222: written to <var>/dev.json
// (mode 0600: the database URL may hold a password) once it is ready,
// removed when it stops.
type DevState struct {
	PID         int    `json:"pid"`
	NATSURL     string `json:"nats_url"`
	DatabaseURL string `json:"database_url"`
	HTTPURL     string `json:"http_url,omitempty"`
	Prefix      string `json:"subject_prefix"`
	// NATSPasswordFiles are the local cluster's NATS users (deploy/nats/users.conf)
	// and the path of each one's password file, for authctl's commands run
	// by hand: never a password here. Dev mode's server has no users: none.
	NATSPasswordFiles map[string]string `json:"nats_password_files,omitempty"`
}

// DevStatePath is where dev mode writes its DevState.
func DevStatePath(varDir string) string { return filepath.Join(varDir, "dev.json") }

func writeDevState(varDir string, st DevState) error {
	return writePrivateJSON(DevStatePath(varDir), st)
}

// writePrivateJSON writes v to path, readable by this user only, whole or
// not at all (a reader never sees half a file).
func writePrivateJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// RunningDev reads the DevState of the dev mode running on varDir. ok is
// false when none runs there (no file, or its process is gone).
func RunningDev(varDir string) (st DevState, ok bool, err error) {
	ok, err = readRunningState(DevStatePath(varDir), &st, func() int { return st.PID })
	return st, ok, err
}

// readRunningState reads the state file at path into v, and tells whether
// the process that wrote it (pid, read from v) still runs.
func readRunningState(path string, v any, pid func() int) (ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	// A dev mode killed without its clean stop leaves the file behind.
	p := pid()
	if p <= 0 || syscall.Kill(p, 0) != nil && !errors.Is(syscall.Kill(p, 0), syscall.EPERM) {
		return false, nil
	}
	return true, nil
}
