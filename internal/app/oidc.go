package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/oidc"
	"github.com/ameli-auth/authsvc/internal/oidc/devrp"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/web"
)

// oidcReturnPrefix is where the web login may return to: the provider's
// login step under the issuer's path (web.Config.ReturnPrefix).
func oidcReturnPrefix(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.Path, "/") + "/login?"
}

// DevClientID is the example client dev mode registers, with its page
// /dev/rp on the web front-end (docs/dev.md).
const DevClientID = "dev-exemple"

// withOIDC builds the OpenID Connect provider (internal/oidc) and serves it
// under the issuer's path beside the web pages h; in dev mode, with the
// example client and its page. Keys: AUTH_OIDC_KEYS' PEM files, else the
// OIDC_KEYS bucket (generated there once in dev mode only).
func withOIDC(cfg config.Config, issuer, base string, nc *nats.Conn, srv *web.Server, h http.Handler, metrics *ops.WebMetrics, log *slog.Logger) (http.Handler, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	var keys *oidc.Keys
	if cfg.OIDCKeys != "" {
		keys, err = oidc.ReadKeyFiles(strings.Split(cfg.OIDCKeys, ","))
	} else {
		keys, err = oidc.LoadKeysKV(ctx, js, cfg.Dev())
	}
	if err != nil {
		return nil, err
	}
	var clients []oidc.ClientConfig
	if cfg.OIDCClients != "" {
		if clients, err = oidc.ReadClients(cfg.OIDCClients); err != nil {
			return nil, err
		}
	}
	if cfg.Dev() {
		clients = append(clients, devrp.Client(base, DevClientID))
	}
	p, err := oidc.New(ctx, oidc.Config{Issuer: issuer, Clients: clients, Keys: keys, Conn: nc, JS: js, Prefix: cfg.Prefix,
		Sessions: srv, Insecure: cfg.Dev(), Replicas: cfg.StreamReplicas, Logger: log.With("part", "oidc")})
	if err != nil {
		return nil, err
	}
	var ph http.Handler = p
	if metrics != nil {
		ph = metrics.Middleware(p.Route, p)
	}
	mux := http.NewServeMux()
	mux.Handle(p.Path()+"/", ph)
	if cfg.Dev() {
		mux.Handle(devrp.Path+"/", devrp.New(base, issuer, DevClientID, log))
	}
	mux.Handle("/", h)
	log.Info("OpenID Connect provider on", "issuer", issuer, "clients", len(clients))
	return mux, nil
}
