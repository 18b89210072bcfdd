package domain

import (
	"os"
	"strings"
	"testing"
)

// The table of docs/rules.md says what the matrix decides.
func TestTheRulesPageStatesTheMatrix(t *testing.T) {
	b, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## What a change of credentials closes")
	if !ok {
		t.Fatal(`docs/rules.md: no section "What a change of credentials closes"`)
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
		t.Fatalf("docs/rules.md table: %d lines, want a header, a rule and %d changes", len(table), len(changes))
	}
	if got, want := strings.Join(table[0][1:], "|"), strings.Join(outstanding, "|"); got != want {
		t.Fatalf("docs/rules.md columns:\n got  %s\n want %s", got, want)
	}
	for i, c := range changes {
		line := table[2+i]
		if line[0] != c {
			t.Errorf("docs/rules.md row %d is %q, want %q", i+1, line[0], c)
			continue
		}
		for j, o := range outstanding {
			if got := line[1+j]; got != matrix[c][o] {
				t.Errorf("docs/rules.md: %s × %s says %q, the matrix %q", c, o, got, matrix[c][o])
			}
		}
	}
}
