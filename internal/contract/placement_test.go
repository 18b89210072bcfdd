package contract_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// The tag sets cycle over the partitions; one partition takes the first;
// tags are lowercased and trimmed, and the text form reads back.
func TestPlacementCyclesOverThePartitions(t *testing.T) {
	pl, err := contract.ParsePlacement(" Group:A ; group:b, SSD ")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range [][]string{{"group:a"}, {"group:b", "ssd"}, {"group:a"}, {"group:b", "ssd"}} {
		if got := pl.Tags(p); !slices.Equal(got, want) {
			t.Errorf("partition %d: %v, want %v", p, got, want)
		}
	}
	if s := pl.String(); s != "group:a;group:b,ssd" {
		t.Errorf("String %q", s)
	}
	back, err := contract.ParsePlacement(pl.String())
	if err != nil || back.String() != pl.String() {
		t.Errorf("read back %v, %v", back, err)
	}
	for _, empty := range []string{"", "  "} {
		if pl, err := contract.ParsePlacement(empty); err != nil || pl != nil || pl.Tags(0) != nil || pl.String() != "" {
			t.Errorf("%q: %v %v", empty, pl, err)
		}
	}
}

// Bad values are refused, naming the set at fault.
func TestPlacementRefusesBadSets(t *testing.T) {
	for in, want := range map[string]string{
		"a;;b":       "tag set 1",
		"a,,b":       "tag set 0",
		";a":         "tag set 0",
		"a;b c":      "tag set 1",
		`a;"b"`:      "quote",
		"group:a;":   "tag set 1",
		"x,y;z,'w'":  "tag set 1",
		"a , ;b":     "empty tag",
		"a;b;c\td,e": "space",
	} {
		_, err := contract.ParsePlacement(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
}
