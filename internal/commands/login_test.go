package commands_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

const (
	nir1     = "2690549588157"
	nir2     = "1933304075242"
	password = "Motdepasse-2023"
)

func TestWholeLoginFlow(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register("2 69 05 49 588 157 80", "valerie@yahoo.fr", password)

	rep := h.Req("login.password", obj{"nir": nir1, "password": password, "channel": "web", "client_ip": "203.0.113.7", "request_id": "r-1"})
	if !rep.OK || rep.Status != contract.StatusOTPRequired || rep.MaskedEmail != "v***@y***.fr" || rep.LoginID == "" {
		t.Fatalf("password step: %+v %+v", rep, rep.Error)
	}
	if strings.Contains(rep.LoginID, acc) {
		t.Fatal("login_id shows the account id before the login is complete")
	}
	send := h.Req("login.otp.send", obj{"login_id": rep.LoginID})
	if !send.OK || send.Status != contract.StatusOTPSent || send.MaskedEmail != "v***@y***.fr" || !send.ExpiresAt.Equal(t0.Add(15*time.Minute)) || send.Message != "" {
		t.Fatalf("otp.send: %+v %+v", send, send.Error)
	}
	code := h.LastCode(acc)

	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	bad := h.Req("login.otp.verify", obj{"login_id": rep.LoginID, "code": wrong})
	wantError(t, bad, domain.CodeOTPInvalid)
	if bad.Error.AttemptsLeft != 2 || !strings.HasPrefix(bad.Error.Message, "Le code de sécurité saisi est erroné") {
		t.Fatalf("wrong code reply: %+v", bad.Error)
	}

	h.Clock.Advance(time.Minute)
	okRep := h.Req("login.otp.verify", obj{"login_id": rep.LoginID, "code": code[:3] + " " + code[3:], "remember_device": true})
	if !okRep.OK || okRep.Status != contract.StatusAuthenticated || okRep.AccountID != acc || okRep.Session == nil || okRep.DeviceToken == "" {
		t.Fatalf("verify: %+v %+v", okRep, okRep.Error)
	}
	if !okRep.Session.ExpiresAt.Equal(t0.Add(31*time.Minute)) || !okRep.DeviceTokenExpiresAt.Equal(t0.Add(time.Minute).AddDate(0, 6, 0)) {
		t.Fatalf("expiries: session %v device %v", okRep.Session.ExpiresAt, okRep.DeviceTokenExpiresAt)
	}
	if okRep.OfferBiometric != nil {
		t.Fatal("offer_biometric is for the app channel only")
	}

	// The code is single use.
	wantError(t, h.Req("login.otp.verify", obj{"login_id": rep.LoginID, "code": code}), domain.CodeLoginExpired)

	// The remembered device skips the code; the password is still required.
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "wrong-password", "device_token": okRep.DeviceToken}), domain.CodeInvalidCredentials)
	direct := h.Req("login.password", obj{"nir": nir1, "password": password, "device_token": okRep.DeviceToken, "channel": "app"})
	if !direct.OK || direct.Status != contract.StatusAuthenticated || direct.Session == nil || direct.OfferBiometric == nil {
		t.Fatalf("trusted device login: %+v %+v", direct, direct.Error)
	}
	// Another browser (no token) is asked the code.
	if r := h.Req("login.password", obj{"nir": nir1, "password": password}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("device without token: %+v", r)
	}

	if r := h.Req("session.logout", obj{"session": direct.Session.Token}); !r.OK || r.Status != contract.StatusLoggedOut {
		t.Fatalf("logout: %+v", r.Error)
	}
	hist := h.History(acc)
	if count(hist, events.TypeSessionEnded) != 1 || count(hist, events.TypeLoginSucceeded) != 2 {
		t.Fatalf("history: %d ended, %d succeeded", count(hist, events.TypeSessionEnded), count(hist, events.TypeLoginSucceeded))
	}
	// The envelope keeps what fraud teams need.
	for _, e := range hist {
		if e.Type == events.TypePasswordVerified && e.CausationID == "r-1" && (e.ClientIP != "203.0.113.7" || e.Channel != "web") {
			t.Fatalf("envelope metadata lost: %+v", e)
		}
	}
}

func TestNewCodeIsAnnouncedAsResent(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	h.Register(nir1, "valerie@yahoo.fr", password)
	login := h.StartLogin(nir1, password)
	again := h.Req("login.otp.send", obj{"login_id": login, "channel": "app"})
	if !again.OK || again.Message != domain.OTPResentInfo {
		t.Fatalf("second code: %+v", again)
	}
}

func TestExpiredCodeAsksForANewOneWithoutCounting(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	login := h.StartLogin(nir1, password)
	code := h.LastCode(acc)
	h.Clock.Advance(15 * time.Minute)
	rep := h.Req("login.otp.verify", obj{"login_id": login, "code": code})
	wantError(t, rep, domain.CodeOTPExpired)
	if rep.Error.Message != "Le code de sécurité n'a pas été saisi dans les 15 minutes. Merci d'en demander un nouveau." {
		t.Fatalf("message: %q", rep.Error.Message)
	}
	// Same login, new code, still within the login's hour.
	if r := h.Req("login.otp.send", obj{"login_id": login}); !r.OK {
		t.Fatalf("new code: %+v", r.Error)
	}
	if r := h.Req("login.otp.verify", obj{"login_id": login, "code": h.LastCode(acc)}); !r.OK {
		t.Fatalf("verify new code: %+v", r.Error)
	}
	if n := count(h.History(acc), events.TypeOTPFailed); n != 0 {
		t.Fatalf("expired code counted as %d failures", n)
	}
}

func TestUnknownNIRAnswersExactlyLikeAWrongPassword(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	h.Register(nir1, "valerie@yahoo.fr", password)
	before := h.StreamCount()
	unknown := h.Raw("login.password", []byte(`{"nir":"`+nir2+`","password":"whatever-1"}`))
	wrong := h.Raw("login.password", []byte(`{"nir":"`+nir1+`","password":"whatever-1"}`))
	if !bytes.Equal(unknown, wrong) {
		t.Fatalf("replies differ:\n unknown NIR    %s\n wrong password %s", unknown, wrong)
	}
	if got := h.StreamCount(); got != before+1 {
		t.Fatalf("stream grew by %d, want 1 (the wrong password only)", got-before)
	}
}

func TestAccountStatesAreToldOnlyAfterTheRightPassword(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)

	if r := h.Req("account.set_affiliation", obj{"nir": nir1, "affiliation": "none"}); !r.OK {
		t.Fatalf("set_affiliation: %+v", r.Error)
	}
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "bad-password"}), domain.CodeInvalidCredentials)
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": password}), domain.CodeAffiliationMissing)
	h.Req("account.set_affiliation", obj{"account_id": acc, "affiliation": "pending"})
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": password}), domain.CodeAffiliationPending)
	h.Req("account.set_affiliation", obj{"account_id": acc, "affiliation": "active"})

	deact := h.Req("account.deactivate", obj{"account_id": acc, "reason": "demande de l'assuré"})
	if !deact.OK || !deact.DeactivatedAt.Equal(t0) {
		t.Fatalf("deactivate: %+v %+v", deact, deact.Error)
	}
	rep := h.Req("login.password", obj{"nir": nir1, "password": password})
	wantError(t, rep, domain.CodeAccountDeactivated)
	if !strings.Contains(rep.Error.Message, "Votre compte a été désactivé le 05/01/2023.") || !rep.Error.DeactivatedAt.Equal(t0) {
		t.Fatalf("deactivated reply: %+v", rep.Error)
	}
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "bad-password"}), domain.CodeInvalidCredentials)

	// Registering again with the NIR reactivates the same account.
	re := h.Req("account.register", obj{"nir": nir1, "email": "nouvelle@mail.fr", "password": "Nouveau-mot-2024", "email_validated": false, "affiliation": "active"})
	if !re.OK || re.Status != contract.StatusReactivated || re.AccountID != acc {
		t.Fatalf("reactivate: %+v %+v", re, re.Error)
	}
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2024"}), domain.CodeNoValidatedEmail)
	wantError(t, h.Req("account.register", obj{"nir": nir1, "email": "x@y.fr", "password": "Nouveau-mot-2024", "email_validated": true, "affiliation": "active"}), domain.CodeAccountExists)
}

func TestAdviserUnlocksAndDevClockEndsBlocks(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	h.Register(nir1, "valerie@yahoo.fr", password)
	var last Reply
	for i := 0; i < 3; i++ {
		last = h.Req("login.password", obj{"nir": nir1, "password": "bad-password"})
	}
	wantError(t, last, domain.CodeAccountLocked)
	if last.Error.Reason != domain.ReasonPasswordFailures || !last.Error.BlockedUntil.Equal(t0.Add(15*time.Minute)) ||
		!strings.Contains(last.Error.Message, "jusqu'au jeudi 5 janvier 2023 14:45 (heure de Paris)") {
		t.Fatalf("lock reply: %+v", last.Error)
	}
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": password}), domain.CodeAccountLocked)
	if r := h.Req("account.unlock", obj{"nir": nir1}); !r.OK || r.Status != contract.StatusUnlocked {
		t.Fatalf("unlock: %+v", r.Error)
	}
	if r := h.Req("login.password", obj{"nir": nir1, "password": password}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("after unlock: %+v", r.Error)
	}
	wantError(t, h.Req("account.unlock", obj{"nir": nir2}), domain.CodeAccountNotFound)
}

func TestRehashOnLoginWhenParametersChange(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	_ = h.Svcs[0].Stop()
	stronger := testPolicy()
	stronger.Argon2.Memory *= 2
	h.AddInstance(stronger)
	if r := h.Req("login.password", obj{"nir": nir1, "password": password}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("login: %+v", r.Error)
	}
	var rehashed string
	for _, e := range h.History(acc) {
		if v, ok := e.Data.(events.PasswordVerified); ok {
			rehashed = v.NewPasswordHash
		}
	}
	if !strings.HasPrefix(rehashed, "$argon2id$v=19$m=512,") {
		t.Fatalf("no rehash recorded: %q", rehashed)
	}
}

// Nothing appended on bad input, a clear invalid_request naming the field,
// and the service still answers afterwards.
func TestBadInput(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	h.Register(nir1, "valerie@yahoo.fr", password)
	before := h.StreamCount()
	huge := `{"nir":"` + nir1 + `","password":"` + strings.Repeat("a", commands.MaxRequestBytes) + `"}`
	for _, c := range []struct {
		name, subject, body, field string
	}{
		{"not JSON", "login.password", `{"nir":`, "body"},
		{"not an object", "login.password", `[1,2]`, "body"},
		{"two objects", "login.password", `{"nir":"1"} {"nir":"2"}`, "body"},
		{"empty body", "login.password", ``, "body"},
		{"invalid UTF-8", "login.password", "{\"nir\":\"\xff\xfe\",\"password\":\"x\"}", "body"},
		{"too large", "login.password", huge, "body"},
		{"unknown field", "login.password", `{"nir":"` + nir1 + `","password":"x","admin":true}`, "admin"},
		{"wrong type", "login.password", `{"nir":2690549588157,"password":"x"}`, "nir"},
		{"missing NIR", "login.password", `{"password":"x"}`, "nir"},
		{"missing password", "login.password", `{"nir":"` + nir1 + `"}`, "password"},
		{"NIR too short", "login.password", `{"nir":"269054958815","password":"x"}`, "nir"},
		{"NIR bad key", "login.password", `{"nir":"269054958815781","password":"x"}`, "nir"},
		{"NIR letters", "login.password", `{"nir":"2690549ABC157","password":"x"}`, "nir"},
		{"bad channel", "login.password", `{"nir":"` + nir1 + `","password":"x","channel":"fax"}`, "channel"},
		{"bad client_ip", "login.password", `{"nir":"` + nir1 + `","password":"x","client_ip":"999.1.1.1"}`, "client_ip"},
		{"bad request_id", "login.password", `{"nir":"` + nir1 + `","password":"x","request_id":"a b"}`, "request_id"},
		{"password too long", "login.password", `{"nir":"` + nir1 + `","password":"` + strings.Repeat("p", 1025) + `"}`, "password"},
		{"missing login_id", "login.otp.send", `{}`, "login_id"},
		{"code not digits", "login.otp.verify", `{"login_id":"x","code":"12a456"}`, "code"},
		{"remember not bool", "login.otp.verify", `{"login_id":"x","code":"123456","remember_device":"yes"}`, "remember_device"},
		{"register bad email", "account.register", `{"nir":"` + nir2 + `","email":"nobody","password":"Motdepasse-1","email_validated":true,"affiliation":"active"}`, "email"},
		{"register no email_validated", "account.register", `{"nir":"` + nir2 + `","email":"a@b.fr","password":"Motdepasse-1","affiliation":"active"}`, "email_validated"},
		{"register bad affiliation", "account.register", `{"nir":"` + nir2 + `","email":"a@b.fr","password":"Motdepasse-1","email_validated":true,"affiliation":"maybe"}`, "affiliation"},
		{"register NIR and id", "account.unlock", `{"nir":"` + nir1 + `","account_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}`, "account_id"},
		{"unlock bad id", "account.unlock", `{"account_id":"../../etc"}`, "account_id"},
		{"unlock nothing", "account.unlock", `{}`, "account_id"},
		{"logout no session", "session.logout", `{"session":""}`, "session"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rep Reply
			if err := json.Unmarshal(h.Raw(c.subject, []byte(c.body)), &rep); err != nil {
				t.Fatal(err)
			}
			wantError(t, rep, domain.CodeInvalidRequest)
			if rep.Error.Field != c.field || !strings.Contains(rep.Error.Message, "« "+c.field+" »") {
				t.Fatalf("field %q, message %q; want field %q", rep.Error.Field, rep.Error.Message, c.field)
			}
		})
	}
	if got := h.StreamCount(); got != before {
		t.Fatalf("bad input appended %d events", got-before)
	}
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "x"}), domain.CodeInvalidCredentials)
	// A weak password is refused at registration with its own code.
	wantError(t, h.Req("account.register", obj{"nir": nir2, "email": "a@b.fr", "password": "court", "email_validated": true, "affiliation": "active"}), domain.CodeWeakPassword)
}

// Nothing secret reaches the stream: not the password, the code, the
// tokens, the NIR or the email address in clear.
func TestNoSecretInTheStream(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie.secret@yahoo.fr", password)
	login := h.StartLogin(nir1, password)
	code := h.LastCode(acc)
	rep := h.Req("login.otp.verify", obj{"login_id": login, "code": code, "remember_device": true})
	if !rep.OK {
		t.Fatal(rep.Error)
	}
	var all bytes.Buffer
	for _, e := range h.History(acc) {
		b, _ := events.Marshal(e)
		all.Write(b)
	}
	tokenPart := rep.Session.Token[strings.IndexByte(rep.Session.Token, '.')+1:]
	for what, secret := range map[string]string{"password": password, "code": `"` + code + `"`, "session token": tokenPart,
		"device token": rep.DeviceToken, "NIR": nir1, "email": "valerie.secret"} {
		if bytes.Contains(all.Bytes(), []byte(secret)) {
			t.Errorf("%s found in clear in the stream", what)
		}
	}
}

// CVE-2023-47111 in another event-sourced identity server: parallel wrong
// passwords all passed the check. Here the append's expected sequence
// serialises them, across two instances.
func TestParallelWrongPasswordsLockAfterExactlyThree(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	codes := parallel(t, 40, func(int) Reply { return h.Req("login.password", obj{"nir": nir1, "password": "bad-password"}) })
	if codes[domain.CodeInvalidCredentials] != 2 || codes[domain.CodeAccountLocked] != 38 {
		t.Fatalf("replies: %v; want 2 invalid_credentials and 38 account_locked", codes)
	}
	if n := count(h.History(acc), events.TypePasswordFailed); n != 3 {
		t.Fatalf("%d failures recorded, want 3", n)
	}
}

func TestParallelCodeRequestsIssueExactlyFive(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	rep := h.Req("login.password", obj{"nir": nir1, "password": password})
	codes := parallel(t, 20, func(int) Reply { return h.Req("login.otp.send", obj{"login_id": rep.LoginID}) })
	if codes[contract.StatusOTPSent] != 5 || codes[domain.CodeOTPQuotaExceeded] != 1 || codes[domain.CodeAccountLocked] != 14 {
		t.Fatalf("replies: %v; want 5 otp_sent, 1 otp_quota_exceeded, 14 account_locked", codes)
	}
	hist := h.History(acc)
	if count(hist, events.TypeOTPIssued) != 5 || count(hist, events.TypeOTPQuotaExceeded) != 1 {
		t.Fatalf("recorded %d codes and %d quota blocks", count(hist, events.TypeOTPIssued), count(hist, events.TypeOTPQuotaExceeded))
	}
}

func TestParallelChecksOfOneRightCodeOpenOneSession(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	login := h.StartLogin(nir1, password)
	code := h.LastCode(acc)
	codes := parallel(t, 10, func(int) Reply { return h.Req("login.otp.verify", obj{"login_id": login, "code": code}) })
	if codes[contract.StatusAuthenticated] != 1 || codes[domain.CodeLoginExpired] != 9 {
		t.Fatalf("replies: %v; want 1 authenticated, 9 login_expired", codes)
	}
	if n := count(h.History(acc), events.TypeLoginSucceeded); n != 1 {
		t.Fatalf("%d sessions recorded", n)
	}
}

func TestParallelWrongCodesLockAfterExactlyThree(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	login := h.StartLogin(nir1, password)
	wrong := "000000"
	if h.LastCode(acc) == wrong {
		wrong = "999999"
	}
	codes := parallel(t, 12, func(int) Reply { return h.Req("login.otp.verify", obj{"login_id": login, "code": wrong}) })
	if codes[domain.CodeOTPInvalid] != 2 || codes[domain.CodeAccountLocked] != 10 {
		t.Fatalf("replies: %v", codes)
	}
	if n := count(h.History(acc), events.TypeOTPFailed); n != 3 {
		t.Fatalf("%d code failures recorded", n)
	}
}

// A retried request (same request_id) appends nothing twice and, on the
// same instance, gets the very reply of the first try.
func TestRetriedRequestAppendsOnce(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	body := []byte(`{"nir":"` + nir1 + `","password":"bad-password","request_id":"retry-1"}`)
	first := h.Raw("login.password", body)
	second := h.Raw("login.password", body)
	if !bytes.Equal(first, second) {
		t.Fatalf("retry got another reply:\n%s\n%s", first, second)
	}
	if n := count(h.History(acc), events.TypePasswordFailed); n != 1 {
		t.Fatalf("%d failures recorded for one request", n)
	}
	// Another instance that never saw the request: the stream's
	// deduplication still appends nothing.
	_ = h.Svcs[0].Stop()
	h.AddInstance(testPolicy())
	third := h.Req("login.password", obj{"nir": nir1, "password": "bad-password", "request_id": "retry-1"})
	wantError(t, third, domain.CodeInvalidCredentials)
	if n := count(h.History(acc), events.TypePasswordFailed); n != 1 {
		t.Fatalf("%d failures recorded after a retry on another instance", n)
	}
}

// parallel runs n requests at once and counts replies by status or code.
func parallel(t *testing.T, n int, do func(i int) Reply) map[string]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			rep := do(i)
			k := rep.Status
			if !rep.OK {
				k = rep.Error.Code
			}
			mu.Lock()
			codes[k]++
			mu.Unlock()
		}(i)
	}
	close(start)
	wg.Wait()
	return codes
}
