package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDeviceStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "ameli-auth", "devices.json")
	s, err := loadDevices(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.token(nirA) != "" {
		t.Fatal("token in an empty store")
	}
	exp := time.Date(2023, 7, 5, 13, 30, 0, 0, time.UTC)
	if err := s.put(nirA, "tok-A", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.put(nirB, "tok-B", exp); err != nil {
		t.Fatal(err)
	}
	dir, _ := os.Stat(filepath.Dir(path))
	file, _ := os.Stat(path)
	if dir.Mode().Perm() != 0o700 || file.Mode().Perm() != 0o600 {
		t.Errorf("modes dir %v file %v", dir.Mode().Perm(), file.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), nirA) || strings.Contains(string(raw), nirB) {
		t.Errorf("NIR in clear:\n%s", raw)
	}

	again, err := loadDevices(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.token(nirA) != "tok-A" || again.token(nirB) != "tok-B" {
		t.Fatal("tokens not read back")
	}
	if err := again.forget(nirA); err != nil {
		t.Fatal(err)
	}
	third, _ := loadDevices(path)
	if third.token(nirA) != "" || third.token(nirB) != "tok-B" {
		t.Fatal("forget")
	}

	// Another file has another salt: its keys for the same NIR differ.
	other, _ := loadDevices(filepath.Join(t.TempDir(), "devices.json"))
	if other.key(nirA) == third.key(nirA) {
		t.Error("two stores key a NIR the same way")
	}

	// A damaged file is reported and replaced at the next save.
	os.WriteFile(path, []byte("{not json"), 0o600)
	broken, err := loadDevices(path)
	if err == nil || broken.token(nirB) != "" {
		t.Fatalf("damaged file: %v", err)
	}
	if err := broken.put(nirA, "tok-A2", exp); err != nil {
		t.Fatal(err)
	}
	if s, _ := loadDevices(path); s.token(nirA) != "tok-A2" {
		t.Fatal("not rewritten")
	}
}

func TestLoginBadNIRFlag(t *testing.T) {
	var out, errw syncBuffer
	code := Run(t.Context(), []string{"--nats-url", "nats://127.0.0.1:1", "login", "--nir", "12345", "--devices-file", filepath.Join(t.TempDir(), "d.json")},
		strings.NewReader(""), &out, &errw)
	if code != 1 || !strings.Contains(out.String(), "Le numéro de sécurité sociale doit contenir 13 caractères") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errw.String())
	}
}
