package commands_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// batchNIR is the i-th NIR of the batch tests (13 valid characters).
func batchNIR(i int) string { return fmt.Sprintf("1%012d", 700_000_000_000+i) }

// account.import_batch decides each row as account.import decides one
// request, and answers each row in order: new accounts registered (one
// event each, found by their NIR), a deactivated one reactivated, an
// existing one account_exists, a NIR twice in the batch created once,
// invalid rows refused naming their field (a malformed hash, a hash over
// the policy's cost bounds, a bad NIR, a missing email_validated), none of
// which stops the others. Imported accounts log in with their old hash.
func TestImportBatchDecidesEachRow(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	existing := h.Register(nir1, "valerie@yahoo.fr", password)
	closed := h.Register(nir2, "jean@free.fr", password)
	if r := h.Req("account.deactivate", obj{"account_id": closed, "channel": "backoffice"}); !r.OK {
		t.Fatalf("deactivate: %+v", r.Error)
	}
	old, _ := bcrypt.GenerateFromPassword([]byte("ancien-mot-de-passe"), bcrypt.MinCost)
	costly := "$2b$15$" + strings.Repeat("a", 53) // bcrypt cost 15, over the seed's bound of 14
	argon := secrets.HashPassword("autre-mot-de-passe", cheapArgon2)
	yes, no := true, false
	row := func(nir, email, hash string, validated *bool) obj {
		o := obj{"nir": nir, "email": email, "password_hash": hash, "affiliation": "active"}
		if validated != nil {
			o["email_validated"] = *validated
		}
		return o
	}
	rows := []obj{
		row(batchNIR(1), "a1@exemple.fr", string(old), &yes),                  // 0 registered
		row(nir1, "valerie@yahoo.fr", string(old), &yes),                      // 1 exists
		row(batchNIR(2), "a2@exemple.fr", "md5:abc", &yes),                    // 2 bad hash
		row(nir2, "jean@free.fr", argon, &no),                                 // 3 reactivated
		row(batchNIR(3), "a3@exemple.fr", costly, &yes),                       // 4 too costly
		row("12345", "a4@exemple.fr", string(old), &yes),                      // 5 bad NIR
		row(batchNIR(5), "a5@exemple.fr", string(old), nil),                   // 6 no email_validated
		row(batchNIR(6), "a6@exemple.fr", argon, &yes),                        // 7 and 8: the same NIR twice,
		row(batchNIR(6), "autre@exemple.fr", argon, &yes),                     // one registered, the other exists
		row(batchNIR(1)[:1]+" "+batchNIR(1)[1:], "x@y.fr", string(old), &yes), // 9 row 0's NIR, typed with a space: exists
	}
	rep := h.Req(contract.CmdAccountImportBatch, obj{"rows": rows, "channel": "backoffice", "request_id": "batch-1"})
	if !rep.OK || rep.Status != contract.StatusImported || len(rep.Results) != len(rows) {
		t.Fatalf("batch: %+v %+v", rep, rep.Error)
	}
	r := rep.Results
	outcome := func(i int) string {
		if r[i].OK {
			return r[i].Status
		}
		return r[i].Error.Code
	}
	// Rows 0 and 9, 7 and 8 name one NIR each and run at once: which row
	// creates the account is a race, that only one does is not.
	want := []string{"", domain.CodeAccountExists, domain.CodeInvalidRequest, contract.StatusReactivated,
		domain.CodeInvalidRequest, domain.CodeInvalidRequest, domain.CodeInvalidRequest, "", "", ""}
	var created []int
	for _, pair := range [][2]int{{0, 9}, {7, 8}} {
		won, lost := pair[0], pair[1]
		if outcome(lost) == contract.StatusRegistered {
			won, lost = lost, won
		}
		want[won], want[lost] = contract.StatusRegistered, domain.CodeAccountExists
		created = append(created, won)
	}
	for i, w := range want {
		if got := outcome(i); got != w {
			t.Errorf("row %d: %s, want %s (%+v)", i, got, w, r[i].Error)
		}
	}
	for i, field := range map[int]string{2: "password_hash", 4: "password_hash", 5: "nir", 6: "email_validated"} {
		if r[i].Error == nil || r[i].Error.Field != field {
			t.Errorf("row %d: refusal %+v, want field %s", i, r[i].Error, field)
		}
	}
	if !strings.Contains(r[4].Error.Message, "coût trop élevé") {
		t.Errorf("row 4: %q does not name the cost", r[4].Error.Message)
	}
	if r[3].AccountID != closed {
		t.Errorf("reactivated %s, want the deactivated account %s", r[3].AccountID, closed)
	}
	// One event per new account; each NIR leads to its account.
	for _, i := range created {
		if hist := h.History(r[i].AccountID); len(hist) != 1 || hist[0].Type != events.TypeAccountRegistered {
			t.Fatalf("row %d: history %+v", i, hist)
		}
		nir := strings.ReplaceAll(rows[i]["nir"].(string), " ", "")
		if id, err := h.Store.Index().Get(context.Background(), h.Keys.NIRIndexKey(nir)); err != nil || id != r[i].AccountID {
			t.Fatalf("row %d: index says %q %v, want %s", i, id, err, r[i].AccountID)
		}
	}
	if n := len(h.History(existing)); n != 1 {
		t.Fatalf("the existing account has %d events", n)
	}
	// 2 registrations, 1 deactivation (set-up), then 2 imports and 1 reactivation.
	if n := h.StreamCount(); n != 6 {
		t.Fatalf("stream has %d events, want 6", n)
	}
	if l := h.Req("login.password", obj{"nir": batchNIR(1), "password": "ancien-mot-de-passe"}); l.Status != contract.StatusOTPRequired {
		t.Fatalf("login of an imported bcrypt account: %+v", l.Error)
	}
	if l := h.Req("login.password", obj{"nir": batchNIR(6), "password": "autre-mot-de-passe"}); l.Status != contract.StatusOTPRequired {
		t.Fatalf("login of an imported argon2id account: %+v", l.Error)
	}
}

// A batch is bounded: at least one row, at most MaxImportBatchRows, at
// most MaxImportBatchBytes; a request over a bound is refused whole,
// naming the field, before anything is created.
func TestImportBatchBounds(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	hash := secrets.HashPassword(password, cheapArgon2)
	many := make([]obj, commands.MaxImportBatchRows+1)
	for i := range many {
		many[i] = obj{"nir": batchNIR(i), "email": "a@b.fr", "password_hash": hash, "email_validated": true, "affiliation": "active"}
	}
	for name, c := range map[string]struct {
		body  obj
		field string
	}{
		"no rows":       {obj{"rows": []obj{}}, "rows"},
		"rows missing":  {obj{}, "rows"},
		"too many rows": {obj{"rows": many}, "rows"},
		"unknown field": {obj{"rows": many[:1], "dry_run": true}, "dry_run"},
	} {
		rep := h.Req(contract.CmdAccountImportBatch, c.body)
		if rep.OK || rep.Error.Code != domain.CodeInvalidRequest || rep.Error.Field != c.field {
			t.Errorf("%s: %+v %+v, want invalid_request on %s", name, rep, rep.Error, c.field)
		}
	}
	big, _ := json.Marshal(obj{"rows": many[:1], "user_agent": strings.Repeat("a", commands.MaxImportBatchBytes)})
	var rep Reply
	if err := json.Unmarshal(h.Raw(contract.CmdAccountImportBatch, big), &rep); err != nil || rep.OK || rep.Error.Field != "body" {
		t.Fatalf("oversized batch: %+v %v", rep, err)
	}
	// account.import keeps its own, smaller, bound.
	mid, _ := json.Marshal(obj{"nir": nir1, "email": "a@b.fr", "password_hash": hash, "email_validated": true, "affiliation": "active",
		"user_agent": strings.Repeat("a", commands.MaxRequestBytes)})
	if err := json.Unmarshal(h.Raw(contract.CmdAccountImport, mid), &rep); err != nil || rep.OK || rep.Error.Field != "body" {
		t.Fatalf("account.import over 64 KiB: %+v %v", rep, err)
	}
	if n := h.StreamCount(); n != 0 {
		t.Fatalf("refused batches appended %d events", n)
	}
}

// A batch of more rows than the instance's import window (512) imports
// every row once. A batch retried under its request_id on another
// instance (which has no reply cached) is answered from what each row
// recorded: the same accounts, nothing appended.
func TestImportBatchRetriedElsewhere(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	hash := secrets.HashPassword(password, cheapArgon2)
	batch := func(from, n int) []byte {
		rows := make([]obj, n)
		for i := range rows {
			rows[i] = obj{"nir": batchNIR(from + i), "email": fmt.Sprintf("r%d@exemple.fr", from+i), "password_hash": hash,
				"email_validated": true, "affiliation": "active"}
		}
		b, _ := json.Marshal(obj{"rows": rows, "request_id": fmt.Sprintf("b-%d", from), "channel": "backoffice"})
		return b
	}
	decode := func(raw []byte) Reply {
		var r Reply
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	large := decode(h.Handle(0, contract.CmdAccountImportBatch, batch(0, 600)))
	seen := map[string]bool{}
	for i, r := range large.Results {
		if r.Status != contract.StatusRegistered || seen[r.AccountID] {
			t.Fatalf("row %d: %+v", i, r)
		}
		seen[r.AccountID] = true
	}
	if n := h.StreamCount(); n != 600 {
		t.Fatalf("stream has %d events for 600 rows", n)
	}

	body := batch(1000, 20)
	first := decode(h.Handle(0, contract.CmdAccountImportBatch, body))
	again := decode(h.Handle(1, contract.CmdAccountImportBatch, body))
	for i := range first.Results {
		a, b := first.Results[i], again.Results[i]
		if a.Status != contract.StatusRegistered || b.Status != contract.StatusRegistered || a.AccountID != b.AccountID {
			t.Fatalf("row %d: first %+v, retry %+v", i, a, b)
		}
	}
	if n := h.StreamCount(); n != 620 {
		t.Fatalf("stream has %d events, want 620: the retry appended", n)
	}
}
