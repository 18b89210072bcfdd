package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// A whole login typed into authctl: a wrong password, the right one, a
// wrong code, then the right code with "Se souvenir de cet appareil"; a
// second login on the same machine then needs no code.
func TestLoginScripted(t *testing.T) {
	e := newTestEnv(t)
	id := e.register(nirA, "valerie@yahoo.fr")

	// The code is known only once login.otp.send has run: the input is a
	// pipe the test writes to as the conversation goes.
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan runResult, 1)
	go func() {
		done <- e.authctl(ctxTimeout(t, 30*time.Second), pr, "login", "--devices-file", e.devices)
		pr.Close()
	}()
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(pw, s); err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
	}
	write("2 69 05 49 588 157\nmauvais-mot-de-passe\n" + password + "\n")
	code := e.waitCode(id, 1)
	n, _ := strconv.Atoi(code)
	wrong := fmt.Sprintf("%06d", (n+1)%1_000_000)
	write(wrong + "\no\n" + code + "\n")
	var res runResult
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("authctl login did not finish")
	}
	t.Logf("first login:\n%s", res.stdout)
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{
		"Le mot de passe saisi est incorrect. Merci de le vérifier.", // the web's words (authctl login acts as the web by default)
		"Code envoyé à v***@y***.fr, valable jusqu'à 14h45 (heure de Paris).",
		"Le code de sécurité saisi est erroné.",
		"Il vous reste 2 essais.",
		"Se souvenir de cet appareil ? (o/N)",
		"Connecté : compte " + id + ", session valable jusqu'à 15h00 (heure de Paris).",
		"Appareil mémorisé jusqu'au 05/07/2023",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(res.stdout, password) || strings.Contains(res.stdout, code+"\n") {
		t.Error("the output shows the password or the code")
	}

	// The devices file: private, and without the NIR in clear.
	st, err := os.Stat(e.devices)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("devices file mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(e.devices)
	if strings.Contains(string(raw), nirA) || strings.Contains(string(raw), "2 69 05") {
		t.Errorf("the devices file holds the NIR:\n%s", raw)
	}

	// Second login on this machine: the remembered device skips the code.
	res = e.authctl(ctxTimeout(t, 30*time.Second), strings.NewReader(nirA+"\n"+password+"\n"), "login", "--devices-file", e.devices)
	t.Logf("second login:\n%s", res.stdout)
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "Appareil reconnu") || !strings.Contains(res.stdout, "Connecté : compte "+id) {
		t.Errorf("second login did not use the device:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "Code envoyé") {
		t.Errorf("second login asked a code:\n%s", res.stdout)
	}
	var methods []string
	for _, env := range e.history(id) {
		if s, ok := env.Data.(events.LoginSucceeded); ok {
			methods = append(methods, s.Method)
			if env.UserAgent != userAgent {
				t.Errorf("user agent %q", env.UserAgent)
			}
		}
	}
	if strings.Join(methods, ",") != "otp,trusted_device" {
		t.Errorf("login methods %v", methods)
	}
}

// A refused login exits 1 after the service's message; an expired code
// offers a new one.
func TestLoginExpiredCodeAndBlock(t *testing.T) {
	e := newTestEnv(t)
	id := e.register(nirA, "valerie@yahoo.fr")

	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan runResult, 1)
	go func() {
		done <- e.authctl(ctxTimeout(t, 30*time.Second), pr, "login", "--nir", nirA, "--devices-file", e.devices, "--channel", "app")
		pr.Close()
	}()
	io.WriteString(pw, password+"\n")
	first := e.waitCode(id, 1)
	e.clock.Advance(15 * time.Minute)  // the code has just expired
	io.WriteString(pw, first+"\n\n\n") // the code, "remember?" (no), "a new code?" (yes)
	second := e.waitCode(id, 2)
	io.WriteString(pw, second+"\n")
	res := <-done
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{
		"Le code de sécurité n'a pas été saisi dans les 15 minutes.",
		"Demander un nouveau code ? (O/n)",
		"Un nouveau code vient de vous être envoyé",
		"valable jusqu'à 15h00 (heure de Paris)",
		"Connecté : compte " + id,
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, "Appareil mémorisé") {
		t.Error("device remembered without being asked")
	}

	// Three wrong passwords: the third answers the block, with its end.
	in := strings.NewReader("faux-1\nfaux-2\nfaux-3\n")
	res = e.authctl(ctxTimeout(t, 30*time.Second), in, "login", "--nir", nirA, "--devices-file", e.devices)
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "est bloqué jusqu'au jeudi 5 janvier 2023 15:00 (heure de Paris)") {
		t.Errorf("no block message:\n%s", res.stdout)
	}
}
