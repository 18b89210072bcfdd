package commands

import (
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Metrics is told what the service does beyond each command's outcome
// (Config.Observe): the facts it records, its lost races and the hashing
// pool's queue. internal/ops implements it with Prometheus, so that this
// package does not depend on Prometheus. Every method must be fast and
// safe for concurrent use. None is given a NIR, an email, an account id or
// a token: only facts (whose type and kind are fixed by the contract),
// store names, reasons and durations.
type Metrics interface {
	// Recorded is called once per fact recorded by a decision: each event
	// appended to an account's stream (shadow false; a retry answered
	// from the fact it recorded earlier is not recorded again), and each
	// fact decided on a NIR without an account and kept in its shadow
	// state (shadow true: nothing is appended, nothing is mailed;
	// docs/enumeration.md).
	Recorded(e events.Event, shadow bool)
	// Conflict is called when a write lost a race to another decision: an
	// append whose expected sequence was stale (store StoreAccount) or a
	// shadow state's compare-and-set (StoreShadow). The decision is then
	// made again on the reloaded state, up to 50 times.
	Conflict(store string)
	// Retry is called each time a decision is made again on a reloaded
	// state: after a Conflict (RetryConflict), or because a decision that
	// appends nothing was made on a cached state behind the stream
	// (RetryStale; another instance had appended).
	Retry(reason string)
	// HashWaited is the time a password check or hash waited for a worker
	// of the bounded hashing pool (Config.HashWorkers).
	HashWaited(d time.Duration)
	// Hashing is +1 when a worker starts an argon2id (or bcrypt)
	// computation and -1 when it ends.
	Hashing(delta int)
	// CacheBound is told once, when the service is made, the most
	// entries each of its caches keeps (CacheAccounts, CacheShadows,
	// CacheReplies): every cache of the service is bounded, so its memory
	// does not grow with the accounts or the NIRs it meets (issue 16).
	CacheBound(cache string, max int)
	// Cached is told each change of a cache: entries added (negative when
	// more went than came) and evicted, the entries dropped to stay within
	// the bound (the least recently used) or because they expired.
	Cached(cache string, added, evicted int)
	// Covered is told each login attempt the coverer handled (cover.go):
	// how (CoveredAlready, CoveredSnapshot, CoveredGone) and its age then,
	// from its append: a minute when the coverers keep up, more when they
	// fall behind (an alert well before the retention).
	Covered(how string, age time.Duration)
	// Source is told what the password-spraying defence did (sources.go):
	// a source throttled or released (each also a fraud event), an
	// attempt refused by it, or a fraud event that could not be written;
	// kind is events.SourceKindIP or events.SourceKindPrefix. Never the
	// address.
	Source(what, kind string)
}

// Stores and reasons given to Metrics.
const (
	StoreAccount  = "account" // an account's events (eventstore.Store.Append)
	StoreShadow   = "shadow"  // a NIR's shadow state (eventstore.Shadows.Put)
	StoreSource   = "source"  // a source's count (eventstore.Sources.Put)
	RetryConflict = "conflict"
	RetryStale    = "stale"

	CacheAccounts = "accounts" // account states (Config.CacheSize)
	CacheShadows  = "shadows"  // shadow states of NIRs without an account (Config.CacheSize)
	CacheReplies  = "replies"  // replies to requests with a request_id, 2 minutes (replyCache)
)

// What Metrics.Source is told.
const (
	SourceThrottled = "throttled"  // fraud.source_throttled recorded
	SourceReleased  = "released"   // fraud.source_released recorded
	SourceRefused   = "refused"    // an attempt refused with too_many_attempts
	SourceEventLost = "event_lost" // a fraud event the log refused
)

// noMetrics is the Metrics of a service configured without any.
type noMetrics struct{}

func (noMetrics) Recorded(events.Event, bool)   {}
func (noMetrics) Conflict(string)               {}
func (noMetrics) Retry(string)                  {}
func (noMetrics) HashWaited(time.Duration)      {}
func (noMetrics) Hashing(int)                   {}
func (noMetrics) CacheBound(string, int)        {}
func (noMetrics) Cached(string, int, int)       {}
func (noMetrics) Covered(string, time.Duration) {}
func (noMetrics) Source(string, string)         {}
