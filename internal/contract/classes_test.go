package contract_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// Every command is either public or back-office, never both, and the
// back-office ones are the "back-office" row of docs/commands.md.
func TestEveryCommandIsPublicOrBackOffice(t *testing.T) {
	pub, bo := contract.PublicCommands(), contract.BackOfficeCommands()
	if len(pub)+len(bo) != len(contract.Commands()) {
		t.Fatalf("%d public + %d back-office commands, %d commands", len(pub), len(bo), len(contract.Commands()))
	}
	for _, c := range contract.Commands() {
		if slices.Contains(pub, c) == slices.Contains(bo, c) || contract.IsBackOffice(c) != slices.Contains(bo, c) {
			t.Errorf("%s: public %v, back-office %v", c, slices.Contains(pub, c), slices.Contains(bo, c))
		}
	}
	for _, c := range []string{contract.CmdAccountUnlock, contract.CmdAccountRegister, contract.CmdAccountImport} {
		if !contract.IsBackOffice(c) {
			t.Errorf("%s is not back-office", c)
		}
	}
	for _, c := range []string{contract.CmdLoginPassword, contract.CmdSessionCheck, contract.CmdPasswordResetRequest, contract.CmdBiometricLogin} {
		if contract.IsBackOffice(c) {
			t.Errorf("%s is back-office", c)
		}
	}
	if contract.IsBackOffice(contract.CmdDevClockAdvance) || slices.Contains(pub, contract.CmdDevClockAdvance) {
		t.Error("the dev clock is a command")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "commands.md"))
	if err != nil {
		t.Fatal(err)
	}
	var row []string
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "| back-office |"); ok {
			for _, f := range strings.Split(strings.Trim(strings.TrimSpace(rest), "|"), ",") {
				row = append(row, strings.Trim(strings.TrimSpace(f), "`"))
			}
		}
	}
	if !slices.Equal(row, bo) {
		t.Errorf("docs/commands.md back-office row %v\ncontract.BackOfficeCommands %v", row, bo)
	}
}

func TestIsInbox(t *testing.T) {
	for reply, want := range map[string]bool{
		"_INBOX.abc": true, "_INBOX.frontend.abc.def": true, "_INBOX.commands.x": true,
		"": false, "_INBOX": false, "_INBOX.": false, "_INBOXX.a": false, "auth.events.01J": false,
		"$JS.API.STREAM.DELETE.AUTH_EVENTS": false, "x._INBOX.a": false, "_INBOX.a b": false,
	} {
		if got := contract.IsInbox(reply); got != want {
			t.Errorf("IsInbox(%q) = %v, want %v", reply, got, want)
		}
	}
}
