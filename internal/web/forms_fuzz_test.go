package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/web"
)

// fuzzRoutes are the pages a browser may send a form or a query to.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/connexion"}, {"POST", "/connexion/envoi-code"}, {"POST", "/connexion/code"}, {"POST", "/deconnexion"},
	{"POST", "/mes-informations/mot-de-passe/code"}, {"POST", "/mes-informations/mot-de-passe/verification"},
	{"POST", "/mes-informations/mot-de-passe"}, {"POST", "/mes-informations/mail"}, {"POST", "/mes-informations/mail/confirmation"},
	{"POST", "/mot-de-passe-oublie"}, {"POST", "/password/reset"},
	{"GET", "/connexion"}, {"GET", "/accueil"}, {"GET", "/mes-informations"}, {"GET", "/rubrique/remboursements"},
	{"GET", "/mes-informations/mail"}, {"GET", "/password/reset"}, {"GET", "/mot-de-passe-oublie"}, {"GET", "/"},
}

// fuzzReplies are the commands service's replies the fake answers with,
// one chosen by the fuzzer per request: each kind of page the handlers
// render.
var fuzzReplies = []string{
	`{"ok":true,"status":"otp_required","login_id":"v1.AAAA","masked_email":"v***@y***.fr"}`,
	`{"ok":true,"status":"otp_sent","masked_email":"v***@y***.fr","expires_at":"2023-01-05T13:45:00Z","message":"Un nouveau code vous a été envoyé."}`,
	`{"ok":true,"status":"authenticated","account_id":"01GNNA1J5X1V2RZ3E9W5YQ8K6T","session":{"token":"s","expires_at":"2023-01-05T14:00:00Z"},"device_token":"d","device_token_expires_at":"2023-04-05T13:30:00Z"}`,
	`{"ok":true,"status":"session_valid","account_id":"01GNNA1J5X1V2RZ3E9W5YQ8K6T","masked_email":"v***@y***.fr","previous_login_at":"2023-01-04T08:00:00Z"}`,
	`{"ok":true,"status":"code_sent","masked_email":"v***@y***.fr","expires_at":"2023-01-05T13:45:00Z"}`,
	`{"ok":true,"status":"code_verified"}`, `{"ok":true,"status":"password_changed"}`, `{"ok":true,"status":"logged_out"}`,
	`{"ok":true,"status":"reset_requested"}`, `{"ok":true,"status":"password_reset"}`, `{"ok":true,"status":"email_changed","masked_email":"n***@f***.fr"}`,
	`{"ok":false,"error":{"code":"invalid_request","message":"Requête invalide : le champ « nir » doit contenir 13 caractères (ou 15 avec la clé).","field":"nir"}}`,
	`{"ok":false,"error":{"code":"invalid_request","message":"Requête invalide : le champ « code » doit contenir 6 chiffres.","field":"code"}}`,
	`{"ok":false,"error":{"code":"account_locked","message":"Votre compte est bloqué jusqu'à 14h45.","reason":"password","blocked_until":"2023-01-05T13:45:00Z"}}`,
	`{"ok":false,"error":{"code":"session_invalid","message":"Votre session a expiré."}}`,
	`{"ok":false,"error":{"code":"otp_expired","message":"Le code a expiré."}}`,
	`{"ok":false,"error":{"code":"otp_invalid","message":"Code incorrect.","attempts_left":2}}`,
	`{"ok":false,"error":{"code":"weak_password","message":"Le mot de passe doit contenir au moins 8 caractères."}}`,
	`{"ok":false,"error":{"code":"email_recently_changed","message":"Adresse changée récemment.","until":"2023-01-07T13:30:00Z"}}`,
	`{"ok":false,"error":{"code":"code_requests_exceeded","message":"Trop de demandes.","reason":"password_change"}}`,
	`{"ok":false,"error":{"code":"unavailable","message":"Le service est momentanément indisponible."}}`,
	`{"ok":false}`, `not json`, `{"ok":true}`,
}

// webRequestID is the form's request_id the front-end sends: its own.
var webRequestID = regexp.MustCompile(`^web-[0-9a-f]{32}$`)

// FuzzForms sends any form (or query), user agent and cookies to every
// page of the front-end, on an embedded nats-server with a fake commands
// service answering one of fuzzReplies: no handler panics (the recoverer
// would answer 500), every page is UTF-8 HTML that never echoes a tag typed
// into a form, and every command sent is one JSON object on channel web
// with the front-end's own request_id, a client IP and a user agent of at
// most 512 bytes of UTF-8.
func FuzzForms(f *testing.F) {
	ns := natsutil.RunTestServer(f)
	var (
		mu      sync.Mutex
		reply   string
		sent    [][]byte
		replyNC = natsutil.Connect(f, ns)
	)
	if _, err := replyNC.Subscribe("auth.cmd.>", func(m *nats.Msg) {
		mu.Lock()
		sent = append(sent, m.Data)
		r := reply
		mu.Unlock()
		_ = m.Respond([]byte(r))
	}); err != nil {
		f.Fatal(err)
	}
	if err := replyNC.Flush(); err != nil {
		f.Fatal(err)
	}
	srv, err := web.New(web.Config{Conn: natsutil.Connect(f, ns), Timeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	for i, s := range []string{
		"nir=1+84+03+75+123+456&password=motdepasse&request_id=web-0123456789abcdef0123456789abcdef",
		"login_id=v1.AAAA&nir=1840375123456&masked_email=v***%40y***.fr&code=123+456&remember=on&request_id=web-0123456789abcdef0123456789abcdef",
		"new_password=nouveau-mot-de-passe&confirm_password=nouveau-mot-de-passe&token=t",
		"new_password=a&confirm_password=b", "new_email=n%40free.fr&code=123456", "code=%FF%FE&nir=%00",
		"nir=<script>alert(1)</script>&masked_email=<b>x</b>&login_id=\"><img src=x>", "token=" + strings.Repeat("a", 300),
		"request_id=web-ZZZZ&request_id=web-0123456789abcdef0123456789abcdef", "=&&==&%&%zz&;", "deconnecte=1", "",
	} {
		f.Add(uint8(i), s, "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0", "__Host-session=s; __Host-device=d", uint8(i))
	}
	f.Add(uint8(0), "nir=1", strings.Repeat("é", 300), "__Host-session=\xff", uint8(2))
	f.Add(uint8(6), "new_password=x&confirm_password=x", "\xff\xfe", "__Host-session=\"s\"", uint8(17))

	f.Fuzz(func(t *testing.T, route uint8, form, ua, cookies string, replyIdx uint8) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		mu.Lock()
		reply, sent = fuzzReplies[int(replyIdx)%len(fuzzReplies)], nil
		mu.Unlock()
		var body io.Reader
		target := rt.path
		if rt.method == "POST" {
			body = strings.NewReader(form)
		} else if form != "" {
			target += "?" + form
		}
		req, err := newFuzzRequest(rt.method, target, body)
		if err != nil {
			return // not a URL a browser can send
		}
		if rt.method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header["User-Agent"] = []string{ua}
		req.Header["Cookie"] = []string{cookies}
		req.RemoteAddr = "203.0.113.7:51234"
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)

		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: status %d", rt.method, target, form, rec.Code)
		}
		page := rec.Body.String()
		if !utf8.ValidString(page) {
			t.Fatalf("%s %s %q: the page is not UTF-8", rt.method, target, form)
		}
		if strings.Contains(strings.ToLower(page), "<script") || strings.Contains(page, "<img") || strings.Contains(page, "<b>") {
			t.Fatalf("%s %s %q: a tag typed in the form is in the page", rt.method, target, form)
		}
		mu.Lock()
		got := append([][]byte(nil), sent...)
		mu.Unlock()
		for _, data := range got {
			var cmd map[string]any
			if err := json.Unmarshal(data, &cmd); err != nil {
				t.Fatalf("command %q is not one JSON object: %v", data, err)
			}
			id, _ := cmd["request_id"].(string)
			agent, _ := cmd["user_agent"].(string)
			ip, _ := cmd["client_ip"].(string)
			if cmd["channel"] != "web" || !webRequestID.MatchString(id) || len(agent) > 512 || !utf8.ValidString(agent) {
				t.Fatalf("command %s: channel, request_id or user_agent off", data)
			}
			if _, err := netip.ParseAddr(ip); err != nil {
				t.Fatalf("command %s: client_ip %q", data, ip)
			}
		}
	})
}

// newFuzzRequest is httptest.NewRequest without its panic on a target it
// cannot parse.
func newFuzzRequest(method, target string, body io.Reader) (req *http.Request, err error) {
	req, err = http.NewRequest(method, "http://localhost"+target, body)
	if err != nil {
		return nil, err
	}
	req.RequestURI = target
	return req, nil
}
