package commands

import (
	"slices"
	"sort"
	"testing"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// The service serves exactly the commands the contract names.
func TestServesTheContractsCommands(t *testing.T) {
	var served []string
	for name := range (&Service{}).endpoints() {
		served = append(served, name)
	}
	sort.Strings(served)
	want := slices.Clone(contract.Commands())
	sort.Strings(want)
	if !slices.Equal(served, want) {
		t.Fatalf("served %v\ncontract %v", served, want)
	}
}
