package commands

// Sessions: the authenticated reply every login ends with, and
// session.logout.

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// authenticated is the reply of a login recorded as e: the session
// (sessionToken, whose keyed hash e holds, and its end), offer_biometric on
// the app channel only (never after a biometric login), and deviceToken
// with its end (6 months) when the login remembered the device.
func (s *Service) authenticated(accountID, channel, sessionToken string, e events.LoginSucceeded, deviceToken, deviceID string, st domain.Account) contract.AuthenticatedReply {
	rep := contract.AuthenticatedReply{Done: contract.OK(contract.StatusAuthenticated), AccountID: accountID}
	rep.Session = &contract.Session{Token: sessionToken, ExpiresAt: e.SessionExpiresAt.UTC()}
	if channel == "app" {
		offer := e.Method != events.MethodBiometric && st.OfferBiometric(s.policy, deviceID, e.At)
		rep.OfferBiometric = &offer
	}
	if deviceToken != "" && e.DeviceHash != "" {
		rep.DeviceToken = deviceToken
		rep.DeviceTokenExpiresAt = contract.Timestamp(e.DeviceExpiresAt)
	}
	return rep
}

// logoutRequest is session.logout's body: the session, and, from the
// OpenID Connect provider's end_session only, if_sub and sector.
type logoutRequest struct {
	Common
	Session string `json:"session"`
	// IfSub, when set, closes the session only if its account's pairwise
	// subject for Sector is IfSub: end_session's id_token_hint names who
	// logs out, and a hint of another account (an attacker's own token in
	// a cross-site link) must not close this browser's session (our
	// choice; OpenID Connect RP-Initiated Logout 1.0 section 2 lets the OP
	// decide). Both absent: the web's own logout, unchanged.
	IfSub  string `json:"if_sub,omitempty"`
	Sector string `json:"sector,omitempty"`
}

// logout answers session.logout: logged_out once the session is closed
// (domain.Logout). Refusals: invalid_request naming session, if_sub (not
// 64 lowercase hex digits, or missing while sector is sent) or sector
// (missing while if_sub is sent, over 255 bytes, not visible ASCII);
// session_invalid for a session token that names no account, or, with
// if_sub, an account whose keys.PairwiseSubject(sector, account) (as
// oidc.authorize gives it) is not if_sub: then nothing is appended.
func (s *Service) logout(ctx context.Context, data []byte) contract.Reply {
	var req logoutRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := logoutSubjectFields(req.IfSub, req.Sector); err != nil {
		return errorReply(err)
	}
	accountID, hash, err := s.sessionAccount(ctx, req.Session)
	if err != nil {
		return errorReply(err)
	}
	if req.IfSub != "" && subtle.ConstantTimeCompare([]byte(s.keys.PairwiseSubject(req.Sector, accountID)), []byte(req.IfSub)) != 1 {
		return errorReply(&domain.Error{Code: domain.CodeSessionInvalid})
	}
	_, err = s.accounts.execute(ctx, accountID, s.clock.Now(), metadata(&req.Common), func(domain.Account) (domain.Command, error) {
		return domain.Logout{SessionHash: hash}, nil
	})
	if err != nil {
		return s.fail(contract.CmdSessionLogout, err)
	}
	return contract.OK(contract.StatusLoggedOut)
}

// logoutSubjectFields checks session.logout's if_sub and sector: both or
// neither; if_sub a pairwise subject (64 lowercase hex digits,
// secrets.PairwiseSubject's shape), sector as oidc.authorize's.
func logoutSubjectFields(ifSub, sector string) error {
	if ifSub == "" && sector == "" {
		return nil
	}
	if ifSub == "" {
		return domain.InvalidRequest("if_sub", "est obligatoire avec sector")
	}
	if len(ifSub) != 64 || strings.ContainsFunc(ifSub, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) {
		return domain.InvalidRequest("if_sub", "doit faire 64 chiffres hexadécimaux minuscules")
	}
	return oidcName("sector", sector, true)
}
