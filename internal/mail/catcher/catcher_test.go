package catcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/mail"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
)

const from = "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>"

func send(t *testing.T, addr string, kind mail.Kind, data any, to string) {
	t.Helper()
	s, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: addr, TLS: mail.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	subject, text, html, err := mail.Render(kind, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), mail.Message{From: from, To: to, Subject: subject, Text: text, HTML: html,
		MessageID: mail.MessageID("01EVT", kind, from)}); err != nil {
		t.Fatal(err)
	}
}

func TestCatcherPrintsKeepsAndShowsTheMails(t *testing.T) {
	var console bytes.Buffer
	c, err := catcher.Start(catcher.Options{Console: &console, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(t, c.Addr(), mail.KindLoginCode, mail.LoginCode{Code: "123456", Lifetime: 15 * time.Minute}, "a@example.fr")
	send(t, c.Addr(), mail.KindPasswordReset, mail.PasswordReset{Link: "https://ameli.example/password/reset?token=T0K", Lifetime: time.Hour}, "b@example.fr")
	send(t, c.Addr(), mail.KindPasswordChangeCode, mail.PasswordChangeCode{Code: "4821", Lifetime: 15 * time.Minute}, "c@example.fr")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitCount(ctx, 3); err != nil {
		t.Fatal(err)
	}

	out := console.String()
	for _, want := range []string{`#1 "Votre code de sécurité pour vous connecter à votre compte ameli" code 123456`,
		"link https://ameli.example/password/reset?token=T0K", "code 4821"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "example.fr") {
		t.Errorf("the console shows an address:\n%s", out)
	}

	msgs := c.Messages()
	if len(msgs) != 2 || msgs[0].ID != "2" || msgs[1].Code != "4821" || c.Count() != 3 {
		t.Fatalf("kept %d mails (first #%s), count %d", len(msgs), msgs[0].ID, c.Count())
	}
	if _, ok := c.Message("1"); ok {
		t.Error("mail #1 was kept beyond Keep")
	}
	m, ok := c.Message("2")
	if !ok || m.Link != "https://ameli.example/password/reset?token=T0K" || m.Code != "" {
		t.Errorf("mail #2: %+v", m)
	}

	srv := httptest.NewServer(http.StripPrefix("/mails", c.Handler()))
	defer srv.Close()
	get := func(path string) (string, http.Header) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(b), resp.Header
	}
	list, _ := get("/mails/")
	if !strings.Contains(list, "4821") || !strings.Contains(list, `href="./3"`) || strings.Index(list, `href="./3"`) > strings.Index(list, `href="./2"`) {
		t.Errorf("list page:\n%s", list)
	}
	page, _ := get("/mails/3")
	if !strings.Contains(page, "Votre code de confirmation") || !strings.Contains(page, `src="./3/html"`) {
		t.Errorf("mail page:\n%s", page)
	}
	html, hdr := get("/mails/3/html")
	if !strings.Contains(html, ">4821</span>") || !strings.Contains(hdr.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("html part: %s %v", html, hdr)
	}
	if raw, _ := get("/mails/3/raw"); !strings.Contains(raw, "Message-ID: <01EVT.password-change-code@app.assurance-maladie.fr>") {
		t.Errorf("raw:\n%s", raw)
	}
	body, _ := get("/mails/api/messages")
	var api []struct{ ID, Subject, Code string }
	if err := json.Unmarshal([]byte(body), &api); err != nil || len(api) != 2 || api[0].Code != "4821" {
		t.Errorf("api: %s (%v)", body, err)
	}
	resp, err := http.Get(srv.URL + "/mails/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("dropped mail: %s", resp.Status)
	}
}

func TestParseReadsBase64AndPlainMails(t *testing.T) {
	raw := "From: a@example.fr\r\nTo: b@example.fr\r\nSubject: =?UTF-8?q?S=C3=A9curit=C3=A9?=\r\nMessage-ID: <x@y>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"Q29kZSA6CiAgICA5ODc2NTQK\r\n"
	m, err := catcher.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Sécurité" || m.Code != "987654" || m.MessageID != "x@y" || m.MediaType != "text/plain" {
		t.Errorf("%+v", m)
	}
}
