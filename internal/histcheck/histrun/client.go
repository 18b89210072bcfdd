package histrun

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/histcheck"
)

// account is what the clients know of one account: a client's knowledge,
// not the truth (the stream is); a reply lost to a fault leaves it stale,
// and the next requests are simply refused.
type account struct {
	mu       sync.Mutex
	id       string // set once a registration was acknowledged
	nir      string
	email    string
	password string
	logins   []string // login_ids from otp_required
	sessions []string // session tokens
	phone    *ecdsa.PrivateKey
	device   string // the phone's device id, unique to the account
}

func (a *account) knownID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

type obj = commandstest.Obj

var words = []string{"tulipe", "orage", "marmotte", "citadelle", "brouillard", "pelican", "cerisier", "tambour", "lanterne", "glacier"}

// newPassword: three unrelated words and a number, which the password rule
// (zxcvbn) accepts.
func newPassword(rng *rand.Rand) string {
	return fmt.Sprintf("%s-%s-%s-%d", words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(10000))
}

func pick[T any](rng *rand.Rand, s []T) (T, bool) {
	var zero T
	if len(s) == 0 {
		return zero, false
	}
	return s[rng.IntN(len(s))], true
}

// client sends OpsPerRound requests, each on a random account.
func (r *Run) client(c, round int, rng *rand.Rand) {
	for i := range r.Cfg.OpsPerRound {
		a := r.accounts[rng.IntN(len(r.accounts))]
		if round == 0 && i == 0 {
			// Every account is registered in the first round.
			a = r.accounts[c%len(r.accounts)]
		}
		r.step(c, fmt.Sprintf("c%d-r%d-%d", c, round, i), a, rng)
	}
	if round == 0 {
		for j := c; j < len(r.accounts); j += r.Cfg.Clients {
			r.step(c, fmt.Sprintf("c%d-reg-%d", c, j), r.accounts[j], rng)
		}
	}
}

// step chooses a command the account's known state allows and sends it.
func (r *Run) step(c int, reqID string, a *account, rng *rand.Rand) {
	a.mu.Lock()
	id, nir, pw := a.id, a.nir, a.password
	login, hasLogin := pick(rng, a.logins)
	session, hasSession := pick(rng, a.sessions)
	session = strings.TrimPrefix(session, "app:")
	a.mu.Unlock()

	appSession, hasApp := pick(rng, a.appSessions())
	if id == "" {
		body := obj{"nir": nir, "email": a.email, "password": pw, "email_validated": true, "affiliation": "active", "channel": "backoffice"}
		if rep := r.send(c, "", reqID, contract.CmdAccountRegister, body, rng); rep != nil && rep.OK {
			a.mu.Lock()
			a.id = rep.AccountID
			a.mu.Unlock()
		}
		return
	}
	channel := "web"
	if rng.IntN(4) == 0 {
		channel = "app"
	}
	type choice struct {
		weight int
		run    func()
	}
	choices := []choice{
		{14, func() { // a whole login: the right password, a code, the code (right or wrong)
			rep := r.send(c, id, reqID, contract.CmdLoginPassword, obj{"nir": nir, "password": pw, "channel": channel}, rng)
			if rep == nil || !rep.OK || rep.LoginID == "" {
				return
			}
			a.remember(&a.logins, rep.LoginID)
			if rng.IntN(5) == 0 {
				return // an abandoned login
			}
			r.send(c, id, reqID+"-send", contract.CmdLoginOTPSend, obj{"login_id": rep.LoginID, "channel": channel}, rng)
			r.verifyOTP(c, a, id, reqID+"-verify", rep.LoginID, channel, rng)
		}},
		{10, func() { // a wrong password
			r.send(c, id, reqID, contract.CmdLoginPassword, obj{"nir": nir, "password": "mauvais-" + newPassword(rng), "channel": channel}, rng)
		}},
		{4, func() { r.send(c, id, reqID, contract.CmdPasswordResetRequest, obj{"nir": nir}, rng) }},
		{4, func() {
			token, ok := r.lastSealed(id, events.TypePasswordResetRequested)
			if !ok {
				token = "v1.pas-un-jeton"
			}
			npw := newPassword(rng)
			if rep := r.send(c, id, reqID, contract.CmdPasswordResetComplete, obj{"token": token, "new_password": npw}, rng); rep != nil && rep.OK {
				a.setPassword(npw)
			}
		}},
		{3, func() { r.send(c, id, reqID, contract.CmdAccountUnlock, obj{"account_id": id}, rng) }},
		{1, func() {
			r.send(c, id, reqID, contract.CmdAccountDeactivate, obj{"account_id": id, "reason": "holder"}, rng)
		}},
		{1, func() {
			aff := []string{"active", "active", "pending", "none"}[rng.IntN(4)]
			r.send(c, id, reqID, contract.CmdAccountSetAffiliation, obj{"account_id": id, "affiliation": aff}, rng)
		}},
		{1, func() { r.send(c, id, reqID, contract.CmdAccountRevokeBiometrics, obj{"account_id": id}, rng) }},
		{4, func() { // a biometric login: a challenge, signed by the phone (or by another key)
			rep := r.send(c, id, reqID, contract.CmdBiometricChallenge, obj{"device_id": a.device, "channel": "app"}, rng)
			if rep == nil || !rep.OK || rep.Challenge == "" {
				return
			}
			key := a.phone
			if rng.IntN(4) == 0 {
				key = newKey()
			}
			rep = r.send(c, id, reqID+"-login", contract.CmdBiometricLogin, obj{"device_id": a.device, "challenge": rep.Challenge,
				"signature": sign(key, rep.Challenge), "channel": "app"}, rng)
			if rep != nil && rep.OK && rep.Session != nil {
				a.remember(&a.sessions, rep.Session.Token)
			}
		}},
		{2, func() { // register again: refused while active, reactivates when closed
			npw := newPassword(rng)
			body := obj{"nir": nir, "email": a.email, "password": npw, "email_validated": true, "affiliation": "active", "channel": "backoffice"}
			if rep := r.send(c, id, reqID, contract.CmdAccountRegister, body, rng); rep != nil && rep.OK && rep.Status == contract.StatusReactivated {
				a.mu.Lock()
				a.password, a.logins, a.sessions = npw, nil, nil
				a.mu.Unlock()
			}
		}},
	}
	if hasLogin {
		choices = append(choices,
			choice{6, func() {
				r.send(c, id, reqID, contract.CmdLoginOTPSend, obj{"login_id": login, "channel": channel}, rng)
			}},
			choice{6, func() { r.verifyOTP(c, a, id, reqID, login, channel, rng) }})
	}
	if hasApp {
		choices = append(choices,
			choice{2, func() {
				r.send(c, id, reqID, contract.CmdBiometricOffer, obj{"session": appSession, "response": []string{"later", "never", "refuse"}[rng.IntN(3)], "channel": "app"}, rng)
			}},
			choice{8, func() {
				r.send(c, id, reqID, contract.CmdBiometricEnroll, obj{"session": appSession, "device_id": a.device, "public_key": publicKey(a.phone), "channel": "app"}, rng)
			}})
	}
	if hasSession {
		choices = append(choices,
			choice{3, func() { r.send(c, id, reqID, contract.CmdSessionLogout, obj{"session": session}, rng) }},
			choice{1, func() { r.send(c, id, reqID, contract.CmdSessionCheck, obj{"session": session}, rng) }},
			choice{8, func() { // a password change: start, the code (right or wrong), the new password
				rep := r.send(c, id, reqID, contract.CmdPasswordChangeStart, obj{"session": session}, rng)
				if rep == nil || !rep.OK || rng.IntN(5) == 0 {
					return
				}
				if rng.IntN(5) == 0 { // skip the code: must be refused
					r.send(c, id, reqID+"-skip", contract.CmdPasswordChangeComplete, obj{"session": session, "new_password": newPassword(rng)}, rng)
				}
				code, ok := r.lastSealed(id, events.TypePasswordChangeCodeIssued)
				if !ok {
					code = wrong("0000", rng)
				} else if rng.IntN(4) == 0 {
					code = wrong(code, rng)
				}
				rep = r.send(c, id, reqID+"-verify", contract.CmdPasswordChangeVerifyCode, obj{"session": session, "code": code}, rng)
				if rep == nil || !rep.OK || rng.IntN(5) == 0 {
					return
				}
				npw := newPassword(rng)
				if rep := r.send(c, id, reqID+"-complete", contract.CmdPasswordChangeComplete, obj{"session": session, "new_password": npw}, rng); rep != nil && rep.OK {
					a.setPassword(npw)
				}
			}},
			choice{3, func() { // a step of a password change on its own
				switch rng.IntN(3) {
				case 0:
					r.send(c, id, reqID, contract.CmdPasswordChangeStart, obj{"session": session}, rng)
				case 1:
					code, ok := r.lastSealed(id, events.TypePasswordChangeCodeIssued)
					if !ok {
						code = "0000"
					}
					r.send(c, id, reqID, contract.CmdPasswordChangeVerifyCode, obj{"session": session, "code": wrong(code, rng)}, rng)
				default:
					npw := newPassword(rng)
					if rep := r.send(c, id, reqID, contract.CmdPasswordChangeComplete, obj{"session": session, "new_password": npw}, rng); rep != nil && rep.OK {
						a.setPassword(npw)
					}
				}
			}},
			choice{5, func() { // an email change: the new address, its code (right or wrong)
				rep := r.send(c, id, reqID, contract.CmdEmailChange, obj{"session": session, "new_email": fmt.Sprintf("nouvelle%d@example.fr", rng.IntN(1000))}, rng)
				if rep == nil || !rep.OK || rng.IntN(4) == 0 {
					return
				}
				code, ok := r.lastSealed(id, events.TypeEmailChangeCodeIssued)
				if !ok || rng.IntN(3) == 0 {
					code = wrong(code, rng)
				}
				r.send(c, id, reqID+"-confirm", contract.CmdEmailConfirm, obj{"session": session, "code": code}, rng)
			}})
	}
	total := 0
	for _, ch := range choices {
		total += ch.weight
	}
	n := rng.IntN(total)
	for _, ch := range choices {
		if n < ch.weight {
			ch.run()
			return
		}
		n -= ch.weight
	}
}

// verifyOTP types the login's latest code, or a wrong one.
func (r *Run) verifyOTP(c int, a *account, id, reqID, login, channel string, rng *rand.Rand) {
	code, ok := r.lastSealed(id, events.TypeOTPIssued)
	if !ok || rng.IntN(4) == 0 {
		code = wrong(code, rng)
	}
	body := obj{"login_id": login, "code": code, "channel": channel}
	if channel == "app" {
		body["device_id"] = a.device
	}
	rep := r.send(c, id, reqID, contract.CmdLoginOTPVerify, body, rng)
	if rep != nil && rep.OK && rep.Session != nil {
		tok := rep.Session.Token
		if channel == "app" {
			tok = "app:" + tok
		}
		a.remember(&a.sessions, tok)
	}
}

func (a *account) remember(list *[]string, v string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	*list = append(*list, v)
	if len(*list) > 4 {
		*list = (*list)[1:]
	}
}

// appSessions are the sessions opened on the app with password and code
// (kept with an "app:" prefix; the prefix is dropped when sent).
func (a *account) appSessions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, s := range a.sessions {
		if t, ok := strings.CutPrefix(s, "app:"); ok {
			out = append(out, t)
		}
	}
	return out
}

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func publicKey(k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// sign signs SHA-256 of the challenge's bytes, as the app does.
func sign(k *ecdsa.PrivateKey, challenge string) string {
	raw, err := base64.StdEncoding.DecodeString(challenge)
	if err != nil {
		return "pas-une-signature"
	}
	digest := sha256.Sum256(raw)
	sig, err := ecdsa.SignASN1(crand.Reader, k, digest[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func (a *account) setPassword(pw string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.password = pw
}

// wrong returns a code of the right length that is not code.
func wrong(code string, rng *rand.Rand) string {
	n := len(code)
	if n == 0 {
		n = 6
	}
	for {
		w := fmt.Sprintf("%0*d", n, rng.IntN(1_000_000)%pow10(n))
		if w != code {
			return w
		}
	}
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// lastSealed opens the sealed secret (code, token) of the account's latest
// event of a type, as the notifier would mail it.
func (r *Run) lastSealed(id, eventType string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), r.Cfg.ReplyTimeout)
	defer cancel()
	recs, err := r.H.Store.Load(ctx, id, 0)
	if err != nil {
		return "", false
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Envelope.Type != eventType {
			continue
		}
		var sealed string
		switch d := recs[i].Envelope.Data.(type) {
		case events.OTPIssued:
			sealed = d.CodeSealed
		case events.PasswordChangeCodeIssued:
			sealed = d.CodeSealed
		case events.EmailChangeCodeIssued:
			sealed = d.CodeSealed
		case events.PasswordResetRequested:
			sealed = d.TokenSealed
		}
		v, err := r.H.Keys.Open(sealed, id)
		return v, err == nil
	}
	return "", false
}

// send sends a request, records it, and sometimes (always when its outcome
// is unknown) sends it again with the same request_id and body: a retry.
func (r *Run) send(c int, accountID, reqID, command string, body obj, rng *rand.Rand) *contract.AnyReply {
	body["request_id"] = reqID
	raw, err := json.Marshal(body)
	if err != nil {
		r.TB.Errorf("marshal %s: %v", command, err)
		return nil
	}
	session := ""
	if tok, ok := body["session"].(string); ok {
		session = r.H.Keys.TokenHash("session", tok)
	}
	var rep *contract.AnyReply
	for try := 0; try < 3; try++ {
		o := r.once(c, accountID, reqID, command, raw, try, session)
		rep = o.Reply
		if !o.Unknown() && rng.Float64() >= r.Cfg.RetryRate {
			break
		}
		if try > 0 && !o.Unknown() {
			break
		}
	}
	return rep
}

func (r *Run) once(c int, accountID, reqID, command string, raw []byte, try int, session string) histcheck.Op {
	r.clockMu.RLock()
	defer r.clockMu.RUnlock()
	o := histcheck.Op{Client: c, Account: accountID, Command: command, RequestID: reqID, Try: try, Body: raw,
		Clock: r.H.Clock.Now(), Start: time.Now(), Session: session}
	msg, err := r.H.NC.Request(contract.Default.Command(command), raw, r.Cfg.ReplyTimeout)
	o.End = time.Now()
	if err != nil {
		o.Err = err.Error()
	} else {
		var rep contract.AnyReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			o.Err = "decode reply: " + err.Error()
		} else {
			o.Reply = &rep
			if rep.Session != nil {
				o.ReplySession = r.H.Keys.TokenHash("session", rep.Session.Token)
			}
		}
	}
	if command == contract.CmdAccountRegister && o.Reply != nil && o.Reply.OK && o.Account == "" {
		o.Account = o.Reply.AccountID
	}
	r.hist.Add(o)
	return o
}
