package oidc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// The commands the provider sends (docs/oidc.md; the wire contract of
// issue 18): oidc.authorize once the browser has a web session,
// oidc.token at the token endpoint, oidc.userinfo at userinfo, and
// session.logout at end_session.
const (
	cmdAuthorize = "oidc.authorize"
	cmdToken     = "oidc.token"
	cmdUserinfo  = "oidc.userinfo"
	cmdLogout    = "session.logout"
)

// The refusals the provider chooses by.
const (
	codeSessionInvalid = "session_invalid"
	codeCodeRequired   = "code_required"
	codeGrantInvalid   = "grant_invalid"
)

// cmdReply is the union of the oidc.* replies.
type cmdReply struct {
	OK       bool                `json:"ok"`
	Status   string              `json:"status,omitempty"`
	Grant    string              `json:"grant,omitempty"`
	Sub      string              `json:"sub,omitempty"`
	ACR      string              `json:"acr,omitempty"`
	AMR      []string            `json:"amr,omitempty"`
	AuthTime time.Time           `json:"auth_time"`
	Claims   map[string]any      `json:"claims,omitempty"`
	Error    *contract.ErrorBody `json:"error,omitempty"`
}

func (r cmdReply) code() string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// errUnavailable: the commands service did not answer (NATS down, no
// reply in time, an unreadable reply).
var errUnavailable = errors.New("oidc: the commands service did not answer")

// commander sends commands as every front-end does: JSON on
// <prefix>.cmd.<name>, channel web, a request_id per call.
type commander struct {
	nc      *nats.Conn
	prefix  string
	timeout time.Duration
}

func (c *commander) send(ctx context.Context, name string, body map[string]any) (cmdReply, error) {
	body["channel"] = "web"
	if _, ok := body["request_id"]; !ok {
		body["request_id"] = newID("oidc-")
	}
	data, err := json.Marshal(body)
	if err != nil {
		return cmdReply{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, c.prefix+".cmd."+name, data)
	if err != nil {
		return cmdReply{}, fmt.Errorf("%w: %s: %v", errUnavailable, name, err)
	}
	var rep cmdReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || (!rep.OK && rep.Error == nil) {
		return cmdReply{}, fmt.Errorf("%w: %s: unreadable reply", errUnavailable, name)
	}
	return rep, nil
}

// newID is prefix and 32 random hex digits.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
