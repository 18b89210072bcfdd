package commands

// The bounded argon2id (and imported bcrypt) pool: every password check
// and every new hash goes through it, never under an account's lock (see
// decideChecked): a hash takes tens of milliseconds, and the lock is a
// stripe shared with other accounts.

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

// passwordCheck is a password checked outside the account's lock, against
// the stored hash it names. The decision, under the lock, uses it only if
// that hash is still the account's (current); else it asks for a new check
// (errRecheck).
type passwordCheck struct {
	hash string // the stored PHC string checked against; "" when not checked (or skipped)
	ok   bool   // the password matches hash
	// newHash is the password hashed with the policy's parameters, made
	// when ok and hash used older ones (login.password only): "" otherwise.
	newHash string
}

// current tells whether c was made against a's stored hash.
func (c passwordCheck) current(a domain.Account) bool {
	return c.hash != "" && c.hash == a.PasswordHash
}

// errHashSkipped: the hash was no longer needed once a worker was free
// (the account got blocked meanwhile); nothing was computed.
var errHashSkipped = errors.New("password check skipped: no longer needed")

// verifyPassword checks a password against a stored hash on the bounded
// hashing pool. key names who the work is for (an account id, or "nir:" and
// an index key): the caller holds that key's gate (see keyGate), and the
// hash observer counts per key. stillNeeded, if set, is asked once a worker
// is free: false returns errHashSkipped without hashing (issue 11, kind 4:
// a block recorded while the request waited costs nothing more).
//
// Its span, "password verify", covers the wait for a worker (an event
// marks when one was free) and the hash.
func (s *Service) verifyPassword(ctx context.Context, key string, stillNeeded func() bool, password, phc string) (ok, rehash bool, err error) {
	ctx, span := s.tracer.Start(ctx, "password verify")
	defer span.End()
	if err := secrets.CheckHash(phc, s.policy.HashLimits); errors.Is(err, secrets.ErrHashCost) {
		// A stored hash over the ceilings (imported before they existed,
		// or written by whoever could write the stream) is never computed:
		// the attempt fails as a wrong password would, and an operator is
		// told. The holder gets in again through a password reset.
		s.log.Error("stored password hash over the cost ceiling: not computed; the holder must reset the password",
			"key", redactKey(key), "err", err)
		return false, false, nil
	}
	release, err := s.hashWorker(ctx, span)
	if err != nil {
		return false, false, err
	}
	defer release()
	if stillNeeded != nil && !stillNeeded() {
		if span.IsRecording() {
			span.SetAttributes(tracing.AttrOutcome.String("skipped"))
		}
		return false, false, errHashSkipped
	}
	s.observeHash(key)
	defer s.hashing()()
	return secrets.VerifyPassword(password, phc, s.policy.Argon2, s.policy.HashLimits)
}

// hashPassword makes the argon2id hash of a new password on the pool.
// Its span is "password hash", as verifyPassword's.
func (s *Service) hashPassword(ctx context.Context, key, password string) (string, error) {
	_, span := s.tracer.Start(ctx, "password hash")
	defer span.End()
	release, err := s.hashWorker(ctx, span)
	if err != nil {
		return "", err
	}
	defer release()
	s.observeHash(key)
	defer s.hashing()()
	return secrets.HashPassword(password, s.policy.Argon2), nil
}

// hashWorker waits for a worker of the pool, or for ctx, and tells
// Metrics how long it waited; span gets an event when a worker is free, or
// an error status. release must be called once.
func (s *Service) hashWorker(ctx context.Context, span trace.Span) (release func(), err error) {
	queued := time.Now()
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		span.SetStatus(codes.Error, "no hashing worker in time")
		return nil, ctx.Err()
	}
	s.cfg.Metrics.HashWaited(time.Since(queued))
	span.AddEvent("hashing worker free")
	return func() { <-s.hashSem }, nil
}

// hashing tells Metrics a computation starts; the returned func, that it
// ended.
func (s *Service) hashing() (done func()) {
	s.cfg.Metrics.Hashing(1)
	return func() { s.cfg.Metrics.Hashing(-1) }
}

func (s *Service) observeHash(key string) {
	if s.cfg.HashObserver != nil {
		s.cfg.HashObserver(key)
	}
}

// redactKey keeps account ids (not personal data) and hides NIR index keys.
func redactKey(key string) string {
	if strings.HasPrefix(key, nirWorkPrefix) {
		return "nir:…"
	}
	return key
}

const maxPasswordBytes = 1024

// nirWorkPrefix marks the work done for a NIR rather than an account (an
// unknown NIR's check, a registration): the gate's and the hash observer's
// key is nirWork(index key).
const nirWorkPrefix = "nir:"

func nirWork(nirKey string) string { return nirWorkPrefix + nirKey }
