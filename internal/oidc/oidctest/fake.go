// Package oidctest is a stand-in for the commands service's oidc.*
// commands (the wire contract of issue 18) on a NATS connection, for the
// provider's tests before the real ones exist and for the cases the real
// service cannot be put in quickly. Test use only.
package oidctest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Session is a web session the fake knows.
type Session struct {
	Account  string
	AMR      []string // ["pwd","otp"] by default
	AuthTime time.Time
	Blocked  bool
	Claims   map[string]any // every claim the account has
}

// Fake answers oidc.authorize, oidc.token, oidc.userinfo and, with
// Logout, session.logout.
type Fake struct {
	mu       sync.Mutex
	sessions map[string]*Session
	grants   map[string]grant
	// Check, when set, resolves a session token the fake does not know
	// (the browser tests ask the real session.check): its account, or
	// "" for no open session.
	Check func(token string) string
	subs  []*nats.Subscription
	calls map[string]int
}

type grant struct {
	session, client, sector string
	scopes                  []string
}

// Start subscribes the fake on nc under prefix; logout also answers
// session.logout (closing the fake's session).
func Start(nc *nats.Conn, prefix string, logout bool) (*Fake, error) {
	f := &Fake{sessions: map[string]*Session{}, grants: map[string]grant{}, calls: map[string]int{}}
	names := []string{"oidc.authorize", "oidc.token", "oidc.userinfo"}
	if logout {
		names = append(names, "session.logout")
	}
	for _, n := range names {
		n := n
		sub, err := nc.Subscribe(prefix+".cmd."+n, func(m *nats.Msg) { _ = m.Respond(f.handle(n, m.Data)) })
		if err != nil {
			return nil, err
		}
		f.subs = append(f.subs, sub)
	}
	return f, nc.Flush()
}

// Stop unsubscribes.
func (f *Fake) Stop() {
	for _, s := range f.subs {
		_ = s.Unsubscribe()
	}
}

// AddSession makes a session token known.
func (f *Fake) AddSession(token string, s Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.AMR == nil {
		s.AMR = []string{"pwd", "otp"}
	}
	if s.AuthTime.IsZero() {
		s.AuthTime = time.Now().UTC().Truncate(time.Second)
	}
	f.sessions[token] = &s
}

// CloseSession ends a session: its grants stop working.
func (f *Fake) CloseSession(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, token)
}

// Calls is how many times a command was asked; for session.logout, how
// many closed a session (or found none), those refused for their if_sub
// being counted as "session.logout refused".
func (f *Fake) Calls(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

type request struct {
	RequestID   string   `json:"request_id"`
	Channel     string   `json:"channel"`
	ClientIP    string   `json:"client_ip"`
	UserAgent   string   `json:"user_agent"`
	Session     string   `json:"session"`
	ClientID    string   `json:"client_id"`
	Sector      string   `json:"sector"`
	Scopes      []string `json:"scopes"`
	RequireCode *bool    `json:"require_code"`
	Grant       string   `json:"grant"`
	IfSub       string   `json:"if_sub"`
}

func refuse(code, field string) []byte {
	b, _ := json.Marshal(map[string]any{"ok": false, "error": map[string]any{"code": code, "message": code, "field": field}})
	return b
}

func (f *Fake) session(token string) *Session {
	if s, ok := f.sessions[token]; ok {
		return s
	}
	if f.Check != nil {
		f.mu.Unlock()
		acc := f.Check(token)
		f.mu.Lock()
		if acc != "" {
			return &Session{Account: acc, AMR: []string{"pwd", "otp"}, AuthTime: time.Now().UTC().Truncate(time.Second),
				Claims: map[string]any{"email": acc + "@exemple.fr", "email_verified": true}}
		}
	}
	return nil
}

func (f *Fake) handle(name string, data []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	var req request
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return refuse("invalid_request", "body")
	}
	switch name {
	case "session.logout":
		// if_sub (end_session): the session's account must be that
		// subject for sector, as the commands service checks; a refusal
		// closed nothing and is counted apart.
		if req.IfSub != "" {
			s := f.session(req.Session)
			if s == nil || Sub(req.Sector, s.Account) != req.IfSub {
				f.calls[name]--
				f.calls[name+" refused"]++
				return refuse("session_invalid", "session")
			}
		}
		delete(f.sessions, req.Session)
		return []byte(`{"ok":true,"status":"logged_out"}`)
	case "oidc.authorize":
		switch {
		case req.Session == "":
			return refuse("invalid_request", "session")
		case req.ClientID == "":
			return refuse("invalid_request", "client_id")
		case req.Sector == "":
			return refuse("invalid_request", "sector")
		case req.RequireCode == nil:
			return refuse("invalid_request", "require_code")
		}
		s := f.session(req.Session)
		if s == nil {
			return refuse("session_invalid", "session")
		}
		if s.Blocked {
			return refuse("account_locked", "")
		}
		if *req.RequireCode && !slices.Contains(s.AMR, "otp") {
			return refuse("code_required", "")
		}
		g := fmt.Sprintf("g-%x", sha256.Sum256([]byte(req.RequestID+req.Session)))
		f.grants[g] = grant{session: req.Session, client: req.ClientID, sector: req.Sector, scopes: req.Scopes}
		b, _ := json.Marshal(map[string]any{"ok": true, "status": "authorized", "grant": g, "sub": Sub(req.Sector, s.Account),
			"acr": "eidas1", "amr": s.AMR, "auth_time": s.AuthTime})
		return b
	default: // oidc.token, oidc.userinfo
		g, ok := f.grants[req.Grant]
		if !ok || g.client != req.ClientID {
			return refuse("grant_invalid", "grant")
		}
		s := f.session(g.session)
		if s == nil {
			return refuse("grant_invalid", "grant")
		}
		claims := map[string]any{}
		for k, v := range s.Claims {
			scope := map[string]string{"email": "email", "email_verified": "email", "given_name": "profile", "family_name": "profile",
				"gender": "profile", "birthdate": "profile", "birthplace": "birth", "birthcountry": "birth"}[k]
			if slices.Contains(req.Scopes, scope) && slices.Contains(g.scopes, scope) {
				claims[k] = v
			}
		}
		status := "token_issued"
		if name == "oidc.userinfo" {
			status = "userinfo"
		}
		b, _ := json.Marshal(map[string]any{"ok": true, "status": status, "sub": Sub(g.sector, s.Account), "acr": "eidas1",
			"amr": s.AMR, "auth_time": s.AuthTime, "claims": claims})
		return b
	}
}

// Sub is the fake's pairwise subject.
func Sub(sector, account string) string {
	h := sha256.Sum256([]byte(sector + "|" + account))
	return hex.EncodeToString(h[:])
}
