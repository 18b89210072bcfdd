package commands_test

import (
	"bytes"
	"testing"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// Refusals are worded for the request's channel (domain.Error.MessageFor:
// the seed's web page and app word a wrong password or code differently),
// and an unknown NIR still gets, on each channel, the very bytes a
// registered NIR gets there (issue 19).
func TestRefusalsSpeakTheRequestsChannel(t *testing.T) {
	registered, unknown := newHarness(t, 1, testPolicy()), newHarness(t, 1, testPolicy())
	acc := registered.Register(nir1, "valerie@yahoo.fr", password)
	wrongPassword := &domain.Error{Code: domain.CodeInvalidCredentials}
	for _, channel := range []string{"web", "app", "kiosk", "backoffice"} {
		body := []byte(`{"nir":"` + nir1 + `","password":"faux","channel":"` + channel + `"}`)
		mine, theirs := registered.Raw("login.password", body), unknown.Raw("login.password", body)
		if !bytes.Equal(mine, theirs) {
			t.Fatalf("%s: replies differ:\n registered %s\n unknown    %s", channel, mine, theirs)
		}
		if want := wrongPassword.MessageFor(channel); !bytes.Contains(mine, []byte(want)) {
			t.Fatalf("%s: %s\n want the message %q", channel, mine, want)
		}
		// Each channel's attempt is a first failure on both sides: the
		// earlier ones are past PasswordFailureMemory.
		for _, h := range []*harness{registered, unknown} {
			h.Clock.Advance(testPolicy().PasswordFailureMemory)
		}
	}

	// A wrong code, on the web and on the app.
	for _, channel := range []string{"web", "app"} {
		loginID := registered.StartLogin(nir1, password)
		registered.Req("login.otp.send", obj{"login_id": loginID})
		code := registered.LastCode(acc)
		wrong := code[:len(code)-1] + string(rune('0'+(code[len(code)-1]-'0'+1)%10))
		rep := registered.Req("login.otp.verify", obj{"login_id": loginID, "code": wrong, "channel": channel})
		wantError(t, rep, domain.CodeOTPInvalid)
		if want := (&domain.Error{Code: domain.CodeOTPInvalid}).MessageFor(channel); rep.Error.Message != want {
			t.Fatalf("%s: wrong code says %q, want %q", channel, rep.Error.Message, want)
		}
	}
}
