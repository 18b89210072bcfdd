package commands_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// An imported account keeps its password: the old bcrypt hash logs in once,
// and is replaced by an argon2id one at that login.
func TestImportedAccountKeepsItsPassword(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	old, _ := bcrypt.GenerateFromPassword([]byte("ancien-mot-de-passe"), bcrypt.MinCost)
	rep := h.Req("account.import", obj{"nir": nir1, "email": "valerie@yahoo.fr", "password_hash": string(old), "email_validated": true, "affiliation": "active"})
	if !rep.OK || rep.Status != contract.StatusRegistered {
		t.Fatalf("import: %+v", rep.Error)
	}
	wantError(t, h.Req("account.import", obj{"nir": nir1, "email": "valerie@yahoo.fr", "password_hash": string(old), "email_validated": true, "affiliation": "active"}), domain.CodeAccountExists)
	bad := h.Req("account.import", obj{"nir": nir2, "email": "a@b.fr", "password_hash": "md5:abc", "email_validated": true, "affiliation": "active"})
	wantError(t, bad, domain.CodeInvalidRequest)
	if bad.Error.Field != "password_hash" {
		t.Fatalf("field %q", bad.Error.Field)
	}
	if r := h.Req("login.password", obj{"nir": nir1, "password": "ancien-mot-de-passe"}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("login with the imported password: %+v", r.Error)
	}
	v := h.LastEvent(rep.AccountID, events.TypePasswordVerified).(events.PasswordVerified)
	if !strings.HasPrefix(v.NewPasswordHash, "$argon2id$") {
		t.Fatalf("bcrypt hash not replaced: %q", v.NewPasswordHash)
	}
}
