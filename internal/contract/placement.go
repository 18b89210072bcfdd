package contract

import (
	"fmt"
	"strings"
	"unicode"
)

// Placement says on which nodes of the NATS cluster each partition's
// stream and buckets live (AUTH_PARTITION_PLACEMENT; docs/scale.md,
// "Placement"): a list of tag sets, and partition p goes on the nodes that
// carry every tag of set p mod len(list), as their server_tags say. An
// empty Placement places nothing: the server chooses the peers.
//
// Its text form lists the sets separated by ";", the tags of a set by ",":
// "group:a;group:b" puts partitions 0, 2, 4... on the nodes tagged group:a
// and 1, 3, 5... on those tagged group:b. One partition (N = 1) takes the
// first set. The list cycles, rather than needing one set per partition,
// so that one value serves every N (the usual case: a few groups of nodes,
// many partitions) and an explicit set per partition is still a list of
// N sets (our choice). Tags are lowercased, as nats-server reads
// server_tags and compares placement tags (jwt.TagList).
type Placement [][]string

// ParsePlacement reads the text form; "" (or only spaces) is the empty
// Placement. It fails on an empty set ("a;;b"), an empty tag ("a,,b") or
// a tag with a space or a quote, naming the set.
func ParsePlacement(s string) (Placement, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var pl Placement
	for i, set := range strings.Split(s, ";") {
		var tags []string
		for _, tag := range strings.Split(set, ",") {
			tag = strings.ToLower(strings.TrimSpace(tag))
			if tag == "" {
				return nil, fmt.Errorf("tag set %d (%q): an empty tag", i, strings.TrimSpace(set))
			}
			if strings.IndexFunc(tag, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\'' }) >= 0 {
				return nil, fmt.Errorf("tag set %d: tag %q has a space or a quote", i, tag)
			}
			tags = append(tags, tag)
		}
		pl = append(pl, tags)
	}
	return pl, nil
}

// Tags is the tag set of partition p: set p mod len; nil when the
// Placement is empty.
func (pl Placement) Tags(p int) []string {
	if len(pl) == 0 {
		return nil
	}
	return pl[p%len(pl)]
}

// String is the text form ParsePlacement reads.
func (pl Placement) String() string {
	sets := make([]string, len(pl))
	for i, tags := range pl {
		sets[i] = strings.Join(tags, ",")
	}
	return strings.Join(sets, ";")
}
