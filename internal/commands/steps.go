package commands

// Steps several use cases share: a decision on an account (or on a
// session's account), the admission of a new password, the lookups of a
// NIR and a session token, the timing floor and the internal failure reply.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// decide runs a command on an account and records its fact. An internal
// failure is logged here; it and the domain's refusal come back as the error.
func (s *Service) decide(ctx context.Context, subject, accountID string, now time.Time, c *Common,
	build func(domain.Account) (domain.Command, error)) (outcome, error) {
	out, err := s.accounts.execute(ctx, accountID, now, metadata(c), build)
	if err != nil {
		if !errors.Is(err, errRecheck) {
			s.fail(subject, err)
		}
		return outcome{}, err
	}
	if out.refusal != nil {
		return outcome{}, out.refusal
	}
	return out, nil
}

// errRecheck is what a decision's build answers, under the account's lock,
// when the password was checked (outside the lock) against another stored
// hash than the account's, or not at all: see decideChecked.
var errRecheck = errors.New("password checked against a stored hash that is no longer the account's")

// maxRechecks bounds the checks made again because the stored hash changed
// between a check and its decision: each one means another request changed
// the password (or rehashed it) meanwhile, which a handful of rounds covers.
const maxRechecks = 5

// decideChecked is decide for a command that needs an argon2id check of a
// password (login.password; password.change.start with the strict profile),
// so that no hash is computed while the account's lock is held: the lock is
// a stripe shared by unrelated accounts (accounts.lock), and a hash takes
// tens of milliseconds. The caller checks the password before, outside the
// lock, on the state it loaded; build, under the lock, uses that check only
// if the stored hash is still the one checked, and else returns errRecheck:
// the lock is released, recheck is called with the account's state as now
// known (it may hash), and the decision is made again, at most maxRechecks
// times. Errors: build's and recheck's (logged), the domain's refusal, and
// an internal failure once the rechecks are spent.
func (s *Service) decideChecked(ctx context.Context, subject, accountID string, now time.Time, c *Common,
	recheck func(domain.Account) error, build func(domain.Account) (domain.Command, error)) (outcome, error) {
	for round := 0; ; round++ {
		out, err := s.decide(ctx, subject, accountID, now, c, build)
		if !errors.Is(err, errRecheck) {
			return out, err
		}
		if round == maxRechecks {
			err = fmt.Errorf("account %s: stored password hash still changing after %d checks", accountID, maxRechecks)
			s.fail(subject, err)
			return outcome{}, err
		}
		// execute leaves the state it decided on in the cache, caught up
		// with the stream when the hash change came from there.
		cur, err := s.accounts.load(ctx, accountID)
		if err == nil {
			err = recheck(cur.state)
		}
		if err != nil {
			s.fail(subject, err)
			return outcome{}, err
		}
	}
}

// onSession runs a command of a logged-in user on the session's account.
func (s *Service) onSession(ctx context.Context, subject string, c *Common, session string,
	build func(accountID, sessionHash string, a domain.Account) (domain.Command, error)) (outcome, string, error) {
	accountID, hash, err := s.sessionAccount(ctx, session)
	if err != nil {
		return outcome{}, "", err
	}
	out, err := s.decide(ctx, subject, accountID, s.clock.Now(), c, func(a domain.Account) (domain.Command, error) {
		return build(accountID, hash, a)
	})
	return out, accountID, err
}

// sessionAccount reads the account a session token belongs to, and the
// token's keyed hash (the one the account stores, when the session began
// before a key rotation); whether the session is open is the decider's
// business.
func (s *Service) sessionAccount(ctx context.Context, token string) (accountID, hash string, err error) {
	if err := required("session", token, 256); err != nil {
		return "", "", err
	}
	accountID, _, found := strings.Cut(token, ".")
	if !found || !validAccountID(accountID) {
		return "", "", &domain.Error{Code: domain.CodeSessionInvalid}
	}
	return accountID, s.storedHash(ctx, accountID, s.keys.TokenHashes("session", token), sessionHashes), nil
}

// admitNewPassword lets a request that sets a new password go on to hash
// it only if the decision would take it (cmd without its hash) and only one
// at a time per account (issue 11, kind 4): a forged link or a change
// without a verified code is refused before it even queues for the
// account's turn, and checked again once it has it. When admitted, the
// caller holds the account's gate until release.
func (s *Service) admitNewPassword(ctx context.Context, subject, accountID string, cmd domain.Command) (release func(), rep contract.Failure, admitted bool) {
	refused := func() (contract.Failure, bool) {
		r, err := s.accounts.refusal(ctx, accountID, s.clock.Now(), cmd)
		if err != nil {
			return s.fail(subject, err), true
		}
		if r != nil {
			return errorReply(r), true
		}
		return contract.Failure{}, false
	}
	if rep, no := refused(); no {
		return nil, rep, false
	}
	release, err := s.gate.acquire(ctx, accountID)
	if err != nil {
		return nil, s.fail(subject, err), false
	}
	if rep, no := refused(); no {
		release()
		return nil, rep, false
	}
	return release, contract.Failure{}, true
}

// replayedSecret answers a retried request whose first try was recorded but
// whose reply carried a fresh secret (a session, a device token, a
// challenge) that only its keyed hash in the stream remembers: the instance
// that answered the first try gave it out, and its reply cache returns it to
// a retry sent there. Elsewhere the client is told `unavailable` and starts
// the step again (a spent code then says otp_expired: ask a new one). The
// stream is not changed: nothing is decided twice.
func (s *Service) replayedSecret(subject string) contract.Failure {
	s.log.Warn("retried request recorded earlier; its reply held a secret not kept", "subject", subject)
	return errorReply(errors.New("request already recorded"))
}

// lookupNIR finds the account of a canonical NIR through the index, under
// each key of the keyring (findIndexed). It keeps no cache: a cache of
// known NIRs would answer them faster than unknown ones (issue 19), and
// grow with the accounts (issue 16); the index's direct gets cost far less
// than the password hash beside them.
func (s *Service) lookupNIR(ctx context.Context, nir string) (string, error) {
	return s.findIndexed(ctx, s.keys.NIRIndexKeys(nir))
}

// floor makes the calling command take at least ResponseFloor from start:
// deferred by the commands whose reply must not tell whether a NIR has an
// account, so the work behind a reply (a cold account load, an append, a
// shadow write) does not show in its timing.
//
// The handler does not wait: it sets the time before which its reply must
// not leave, and the service holds the reply back on a timer (dispatch),
// so the wait takes no in-flight slot. Called outside a service run (no
// holder in ctx), it waits.
func (s *Service) floor(ctx context.Context, start time.Time) {
	if s.cfg.ResponseFloor <= 0 {
		return
	}
	t := start.Add(s.cfg.ResponseFloor)
	if holder, ok := ctx.Value(floorCtx{}).(*time.Time); ok {
		*holder = t
		return
	}
	waitUntil(ctx, t)
}

// floorCtx carries the run's not-before time to the handler (runOnce).
type floorCtx struct{}

// fail logs an internal failure (without any secret: errors here never hold
// one) and tells the user the service is unavailable.
func (s *Service) fail(subject string, err error) contract.Failure {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.log.Warn("command timed out", "subject", subject, "err", err)
	} else {
		s.log.Error("command failed", "subject", subject, "err", err)
	}
	return errorReply(err)
}

func validAccountID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

type codeRequest struct {
	Common
	Session string `json:"session"`
	Code    string `json:"code"`
}

type sessionRequest struct {
	Common
	Session string `json:"session"`
}
