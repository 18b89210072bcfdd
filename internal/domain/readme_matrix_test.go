package domain

import (
	"os"
	"strings"
	"testing"
)

// The README's table says what the matrix decides.
func TestTheREADMEStatesTheMatrix(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "### What a change of credentials closes")
	if !ok {
		t.Fatal(`README: no section "What a change of credentials closes"`)
	}
	var table [][]string
	for _, line := range strings.Split(section, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if len(table) > 0 {
				break
			}
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimRight(strings.TrimSpace(c), "¹²³⁴⁵⁶⁷⁸⁹⁰ "))
		}
		table = append(table, cells)
	}
	if len(table) != 2+len(changes) {
		t.Fatalf("README table: %d lines, want a header, a rule and %d changes", len(table), len(changes))
	}
	if got, want := strings.Join(table[0][1:], "|"), strings.Join(outstanding, "|"); got != want {
		t.Fatalf("README columns:\n got  %s\n want %s", got, want)
	}
	for i, c := range changes {
		line := table[2+i]
		if line[0] != c {
			t.Errorf("README row %d is %q, want %q", i+1, line[0], c)
			continue
		}
		for j, o := range outstanding {
			if got := line[1+j]; got != matrix[c][o] {
				t.Errorf("README: %s × %s says %q, the matrix %q", c, o, got, matrix[c][o])
			}
		}
	}
}
