package catcher

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// Handler serves the caught mails: a list (GET /, refreshed every few
// seconds), one mail with its two parts (GET /{id}), its HTML part alone
// in a sandbox (GET /{id}/html), its raw source (GET /{id}/raw), and the
// list as JSON (GET /api/messages). Links are relative, so it can be
// mounted under a prefix with http.StripPrefix.
func (c *Catcher) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.list)
	mux.HandleFunc("GET /api/messages", c.apiList)
	mux.HandleFunc("GET /{id}", c.show)
	mux.HandleFunc("GET /{id}/html", c.showHTML)
	mux.HandleFunc("GET /{id}/raw", c.showRaw)
	return mux
}

// The page shows times in Paris time, as every date shown to people is,
// whatever the machine's time zone.
var pageFuncs = template.FuncMap{
	"hour": func(t time.Time) string { return t.In(domain.Paris).Format("15:04:05") },
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.In(domain.Paris).Format("02/01/2006 15:04:05") + " (heure de Paris)"
	},
}

var listPage = template.Must(template.New("list").Funcs(pageFuncs).Parse(`<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Mails reçus (dev)</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}code{font-size:1.2em}</style>
</head><body>
<h1>Mails reçus par le catcher de dev</h1>
<p>{{len .}} mail(s), le plus récent en premier. Ces mails ne sont jamais partis vers Internet.</p>
<table><tr><th>#</th><th>Reçu (heure de Paris)</th><th>À</th><th>Objet</th><th>Code</th></tr>
{{range .}}<tr><td><a href="./{{.ID}}">{{.ID}}</a></td><td>{{hour .Received}}</td><td>{{range .RcptTo}}{{.}} {{end}}</td><td><a href="./{{.ID}}">{{.Subject}}</a></td><td><code>{{.Code}}</code></td></tr>
{{end}}</table></body></html>`))

var showPage = template.Must(template.New("show").Funcs(pageFuncs).Parse(`<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{{.Subject}}</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em;white-space:pre-wrap}iframe{width:100%;height:900px;border:1px solid #ccc}dt{font-weight:bold}</style>
</head><body>
<p><a href="./">← tous les mails</a> · <a href="./{{.ID}}/raw">source</a></p>
<h1>{{.Subject}}</h1>
<dl><dt>De</dt><dd>{{.From}}</dd><dt>À</dt><dd>{{.To}}</dd><dt>Date</dt><dd>{{date .Date}}</dd><dt>Reçu</dt><dd>{{date .Received}}</dd><dt>Message-ID</dt><dd>{{.MessageID}}</dd>
{{if .Code}}<dt>Code</dt><dd><code>{{.Code}}</code></dd>{{end}}{{if .Link}}<dt>Lien</dt><dd><a href="{{.Link}}">{{.Link}}</a></dd>{{end}}</dl>
<h2>Partie texte</h2><pre>{{.Text}}</pre>
<h2>Partie HTML</h2><iframe sandbox src="./{{.ID}}/html"></iframe>
</body></html>`))

func (c *Catcher) list(w http.ResponseWriter, _ *http.Request) {
	msgs := c.Messages()
	slices.Reverse(msgs)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = listPage.Execute(w, msgs)
}

func (c *Catcher) get(w http.ResponseWriter, r *http.Request) (Message, bool) {
	m, ok := c.Message(r.PathValue("id"))
	if !ok {
		http.Error(w, "no such mail (only the latest are kept)", http.StatusNotFound)
	}
	return m, ok
}

func (c *Catcher) show(w http.ResponseWriter, r *http.Request) {
	if m, ok := c.get(w, r); ok {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = showPage.Execute(w, m)
	}
}

// showHTML serves a mail's HTML part as is, so the page shows what a mail
// client would; the CSP sandbox keeps it from running anything.
func (c *Catcher) showHTML(w http.ResponseWriter, r *http.Request) {
	if m, ok := c.get(w, r); ok {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		_, _ = w.Write([]byte(m.HTML))
	}
}

func (c *Catcher) showRaw(w http.ResponseWriter, r *http.Request) {
	if m, ok := c.get(w, r); ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(m.Raw)
	}
}

// apiMessage is a mail as the JSON list shows it.
type apiMessage struct {
	ID        string    `json:"id"`
	Received  time.Time `json:"received"`
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Code      string    `json:"code,omitempty"`
	Link      string    `json:"link,omitempty"`
	Text      string    `json:"text"`
}

func (c *Catcher) apiList(w http.ResponseWriter, _ *http.Request) {
	msgs := c.Messages()
	out := make([]apiMessage, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		out = append(out, apiMessage{ID: m.ID, Received: m.Received, To: m.RcptTo, Subject: m.Subject,
			MessageID: m.MessageID, Code: m.Code, Link: m.Link, Text: m.Text})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
