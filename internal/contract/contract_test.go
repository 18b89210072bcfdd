package contract_test

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/schemas"
)

// Every status constant is in the published reply schema's enum, and the
// enum has no status the code does not name.
func TestStatusesAreTheReplySchemas(t *testing.T) {
	b, err := fs.ReadFile(schemas.FS, "replies/reply.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defs struct {
			Success struct {
				Properties struct {
					Status struct {
						Enum []string `json:"enum"`
					} `json:"status"`
				} `json:"properties"`
			} `json:"success"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	inSchema := doc.Defs.Success.Properties.Status.Enum
	if len(inSchema) == 0 {
		t.Fatal("replies/reply.json: no status enum at $defs.success.properties.status")
	}
	got := sorted(contract.Statuses())
	if want := sorted(inSchema); !slices.Equal(got, want) {
		t.Fatalf("status constants %v\nreply.json enum %v", got, want)
	}
	if len(slices.Compact(got)) != len(contract.Statuses()) {
		t.Fatal("a status is listed twice")
	}
}

// Every command name (and the dev clock's) has a request schema under
// schemas/commands, and every schema there is a command name.
func TestEveryCommandHasARequestSchema(t *testing.T) {
	entries, err := fs.ReadDir(schemas.FS, "commands")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
	}
	want := sorted(append(contract.Commands(), contract.CmdDevClockAdvance))
	if got := sorted(files); !slices.Equal(got, want) {
		t.Fatalf("schemas/commands %v\ncommand names %v", got, want)
	}
	if n := len(contract.Commands()); n != 26 {
		t.Fatalf("%d commands, want the 26 endpoints", n)
	}
}

// Each reply type writes its fields in the order of AnyReply, so a reply
// read by a client and written again is the same bytes: the wire shape is
// the one the schemas publish and the tests compare byte for byte.
func TestReplyTypesKeepTheWireOrder(t *testing.T) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	yes := true
	for _, r := range []contract.Reply{
		contract.OK(contract.StatusLoggedOut),
		contract.LoginReply{Done: contract.OK(contract.StatusOTPSent), LoginID: "v1.x", MaskedEmail: "v***@y***.fr", ExpiresAt: &at, Message: "m"},
		contract.AuthenticatedReply{Done: contract.OK(contract.StatusAuthenticated), AccountID: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
			Session: &contract.Session{Token: "t", ExpiresAt: at}, OfferBiometric: &yes, DeviceToken: "d", DeviceTokenExpiresAt: &at},
		contract.AccountReply{Done: contract.OK(contract.StatusDeactivated), AccountID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", DeactivatedAt: &at},
		contract.ChangeReply{Done: contract.OK(contract.StatusCodeSent), MaskedEmail: "v***@y***.fr", ExpiresAt: &at},
		contract.BiometricReply{Done: contract.OK(contract.StatusChallengeIssued), ExpiresAt: &at, Challenge: "AAAA"},
		contract.ClockReply{Done: contract.OK(contract.StatusClockAdvanced), Now: &at},
		contract.OIDCReply{Done: contract.OK(contract.StatusTokenIssued), Grant: "g1.x", Sub: "ab", ACR: "eidas1", AMR: []string{"pwd", "otp"}, AuthTime: &at,
			Claims: &contract.OIDCClaims{Email: "a@b.fr", EmailVerified: &yes, GivenName: "A", FamilyName: "B", Birthdate: "1985-07-14", Gender: "female", Birthplace: "75056", Birthcountry: "99100"}},
		contract.Failure{Error: &contract.ErrorBody{Code: "account_locked", Message: "m", Reason: "password_failures", BlockedUntil: &at}},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var read contract.AnyReply
		if err := json.Unmarshal(b, &read); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(read)
		if !bytes.Equal(b, again) {
			t.Errorf("%T is not in the wire's order:\n %s\n %s", r, b, again)
		}
		ok, outcome := r.Outcome()
		if aok, aout := read.Outcome(); ok != aok || outcome != aout || outcome == "" {
			t.Errorf("%T: outcome %v %q, read back %v %q", r, ok, outcome, aok, aout)
		}
	}
}

func TestSubjects(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{contract.Default.Command(contract.CmdLoginPassword), "auth.cmd.login.password"},
		{contract.Subjects("").Command(contract.CmdLoginOTPSend), "auth.cmd.login.otp.send"},
		{contract.Subjects("x.y").CommandGroup(), "x.y.cmd"},
		{contract.Default.Events("01ARZ3NDEKTSV4RRFFQ69G5FAV"), "auth.events.01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{contract.Subjects("bench1").AllEvents(), "bench1.events.>"},
		{contract.Default.DevClockAdvance(), "auth.dev.clock.advance"},
		{contract.Default.DeadLetters("notifier"), "auth.dlq.notifier"},
		{contract.Default.AllDeadLetters(), "auth.dlq.>"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if id, ok := contract.Default.AccountOf("auth.events.01ARZ3NDEKTSV4RRFFQ69G5FAV"); !ok || id != "01ARZ3NDEKTSV4RRFFQ69G5FAV" {
		t.Errorf("AccountOf: %q %v", id, ok)
	}
	for _, s := range []string{"auth.events.", "other.events.A", "auth.cmd.login.password", "auth.events.A.B"} {
		if id, ok := contract.Default.AccountOf(s); ok {
			t.Errorf("AccountOf(%q) = %q, want none", s, id)
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// The package imports the standard library only, so any package, the
// decider included, may import it.
func TestStandardLibraryOnly(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		for name, f := range p.Files {
			for _, imp := range f.Imports {
				if path, _ := strconv.Unquote(imp.Path.Value); strings.Contains(strings.SplitN(path, "/", 2)[0], ".") {
					t.Errorf("%s imports %s: contract must stay standard library only", name, path)
				}
			}
		}
	}
}

// An import batch with a row answered unavailable is partial: that row may
// be sent again, so the commands service does not keep the reply as final.
func TestImportBatchReplyPartial(t *testing.T) {
	row := func(code string) contract.ImportResult {
		if code == "" {
			return contract.ImportResult{OK: true, Status: "registered", AccountID: "01J0000000000000000000000A"}
		}
		return contract.ImportResult{Error: &contract.ErrorBody{Code: code, Message: "m"}}
	}
	for _, r := range []struct {
		rows    []contract.ImportResult
		partial bool
	}{
		{[]contract.ImportResult{row(""), row("account_exists"), row("invalid_request")}, false},
		{[]contract.ImportResult{row(""), row("unavailable")}, true},
		{nil, false},
	} {
		if got := (contract.ImportBatchReply{Done: contract.OK(contract.StatusImported), Results: r.rows}).Partial(); got != r.partial {
			t.Errorf("%+v: partial %v, want %v", r.rows, got, r.partial)
		}
	}
}
