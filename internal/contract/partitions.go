package contract

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// MaxPartitions bounds AUTH_PARTITIONS. Each partition is a stream and two
// KV buckets (each an R3 Raft group on the cluster), so the bound keeps the
// number of Raft groups per node in the low hundreds.
const MaxPartitions = 64

// Partition is the partition of key among n: FNV-1a 32-bit of the key's
// bytes, modulo n; 0 when n <= 1. It is the hash of nats-server's subject
// mapping function partition(n, token) (server/subject_transform.go,
// getHashPartition), so a stream subject transform
// "<prefix>.events.*" -> "<prefix>.events.{{partition(n,1)}}.{{wildcard(1)}}"
// would put each account in the same partition as this function (tested).
// Accounts are routed by their account id, the NIR index by its key.
func Partition(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// Layout is where the events and the per-account buckets of N partitions
// live (docs/scale.md, "Partitions"). One partition (Partitions 0 or 1) is
// the layout the service always had: stream AUTH_EVENTS on
// <prefix>.events.<account>, buckets AUTH_NIR_INDEX and AUTH_SNAPSHOTS, so
// a deployment that does not set AUTH_PARTITIONS changes nothing. With N > 1,
// partition p is stream AUTH_EVENTS_<p> on <prefix>.events.<p>.<account>
// and buckets AUTH_NIR_INDEX_<p>, AUTH_SNAPSHOTS_<p>. The shadow bucket
// (bounded, not per account) is not partitioned.
type Layout struct {
	Prefix     string // subject prefix; "" is DefaultPrefix
	Partitions int    // 0 or 1: one partition with the historical names
}

// N is the number of partitions, at least 1.
func (l Layout) N() int { return max(l.Partitions, 1) }

// Split tells whether the layout has more than one partition (and so the
// partitioned names).
func (l Layout) Split() bool { return l.Partitions > 1 }

// Subjects is the layout's subject prefix.
func (l Layout) Subjects() Subjects { return Subjects(l.Prefix) }

// PartitionOf is the partition of an account: Partition(accountID, N).
func (l Layout) PartitionOf(accountID string) int { return Partition(accountID, l.N()) }

// Stream is the name of partition p's events stream: AUTH_EVENTS, or
// AUTH_EVENTS_<p> when Split.
func (l Layout) Stream(p int) string { return l.name(EventsStream, p) }

// Streams lists the events streams, partition 0 first.
func (l Layout) Streams() []string {
	out := make([]string, l.N())
	for p := range out {
		out[p] = l.Stream(p)
	}
	return out
}

// IndexBucket is the name of partition p's NIR index bucket (the partition
// of an index key is Partition(key, N)).
func (l Layout) IndexBucket(p int) string { return l.name(NIRIndexBucket, p) }

// SnapshotBucket is the name of partition p's snapshot bucket.
func (l Layout) SnapshotBucket(p int) string { return l.name(SnapshotBucket, p) }

func (l Layout) name(base string, p int) string {
	if !l.Split() {
		return base
	}
	return base + "_" + strconv.Itoa(p)
}

// StreamSubjects is the subject filter of partition p's stream and of its
// consumers: <prefix>.events.> or <prefix>.events.<p>.>.
func (l Layout) StreamSubjects(p int) string {
	if !l.Split() {
		return l.Subjects().AllEvents()
	}
	return l.Subjects().Prefix() + ".events." + strconv.Itoa(p) + ".>"
}

// Events is the subject of an account's events: <prefix>.events.<account>,
// or <prefix>.events.<partition>.<account> when Split.
func (l Layout) Events(accountID string) string {
	if !l.Split() {
		return l.Subjects().Events(accountID)
	}
	return l.Subjects().Prefix() + ".events." + strconv.Itoa(l.PartitionOf(accountID)) + "." + accountID
}

// AccountOf reads the account id from a subject built by Events; false if
// subject is not one, or names a partition other than the account's.
func (l Layout) AccountOf(subject string) (string, bool) {
	if !l.Split() {
		return l.Subjects().AccountOf(subject)
	}
	rest, ok := strings.CutPrefix(subject, l.Subjects().Prefix()+".events.")
	if !ok {
		return "", false
	}
	ptok, id, ok := strings.Cut(rest, ".")
	if !ok || id == "" || strings.Contains(id, ".") {
		return "", false
	}
	p, err := strconv.Atoi(ptok)
	if err != nil || strconv.Itoa(p) != ptok || p != l.PartitionOf(id) {
		return "", false
	}
	return id, true
}
