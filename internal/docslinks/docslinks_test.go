package docslinks

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

const root = "../.."

var (
	// [text](target) and ![alt](target), with an optional "title".
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]*)(?:\s+"[^"]*")?\)`)
	// [label]: target
	refLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*(\S+)`)
	// <scheme:...> autolinks and bare URLs outside code.
	urlText  = regexp.MustCompile(`(?i)\b(?:https?|ftp|mailto):[^\s)>\]]*`)
	inlineCS = regexp.MustCompile("`+[^`]*`+")
	docRef   = regexp.MustCompile(`\bdocs/[A-Za-z0-9_.-]+\.md\b`)
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// pages are README.md and docs/*.md.
func pages(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join(root, "README.md")}, docs...)
}

// prose returns the lines of a Markdown page outside fenced code blocks,
// with inline code spans blanked, each with its line number.
func prose(text string) map[int]string {
	out := map[int]string{}
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence == "" && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")) {
			fence = trimmed[:3]
			continue
		}
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		out[i+1] = inlineCS.ReplaceAllString(line, "``")
	}
	return out
}

// slug is GitHub's anchor for a heading: lower case, only letters, digits,
// spaces, hyphens and underscores kept, spaces turned into hyphens.
func slug(h string) string {
	h = strings.ReplaceAll(h, "`", "")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors lists the heading anchors of a Markdown page, with GitHub's -1,
// -2… for repeated headings.
func anchors(text string) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	for _, line := range prose(text) {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[s+"-"+itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + itoa(n%10)
}

func TestEveryLinkResolvesInsideTheRepository(t *testing.T) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range pages(t) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, page)
		text := string(b)
		for n, line := range prose(text) {
			for _, u := range urlText.FindAllString(line, -1) {
				t.Errorf("%s:%d: %s points outside the repository: quote what you need instead", name, n, u)
			}
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			if m := refLink.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if err := check(absRoot, page, text, target); err != "" {
					t.Errorf("%s:%d: link %q: %s", name, n, target, err)
				}
			}
		}
	}
}

// check tells what is wrong with one link target of page, or "".
func check(absRoot, page, text, target string) string {
	if target == "" {
		return "empty target"
	}
	if strings.Contains(target, "://") || strings.HasPrefix(strings.ToLower(target), "mailto:") {
		return "points outside the repository"
	}
	path, fragment, _ := strings.Cut(target, "#")
	dest := page
	if path != "" {
		if strings.HasPrefix(path, "/") {
			return "absolute path: write it relative to the page"
		}
		dest = filepath.Join(filepath.Dir(page), filepath.FromSlash(path))
		abs, err := filepath.Abs(dest)
		if err != nil {
			return err.Error()
		}
		if abs != absRoot && !strings.HasPrefix(abs, absRoot+string(filepath.Separator)) {
			return "leaves the repository"
		}
		if _, err := os.Stat(dest); err != nil {
			return "no such file or directory"
		}
	}
	if fragment == "" {
		return ""
	}
	if !strings.HasSuffix(dest, ".md") {
		return "" // a line anchor in code, or the like: not checked
	}
	destText := text
	if dest != page {
		b, err := os.ReadFile(dest)
		if err != nil {
			return err.Error()
		}
		destText = string(b)
	}
	if !anchors(destText)[fragment] {
		return "no heading with anchor #" + fragment
	}
	return ""
}

// Comments, help texts and pages name docs/*.md files by path: each must
// exist.
func TestEveryNamedDocsPageExists(t *testing.T) {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "var", "bin", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, ".md") && d.Name() != "Makefile" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, ref := range docRef.FindAllString(string(b), -1) {
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(ref))); err != nil {
				name, _ := filepath.Rel(root, path)
				t.Errorf("%s names %s, which does not exist", name, ref)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"What a change of credentials closes":   "what-a-change-of-credentials-closes",
		"`authctl login`":                       "authctl-login",
		"The decider's hot paths":               "the-deciders-hot-paths",
		"Tables (schema `auth`)":                "tables-schema-auth",
		"Watermill, and why not watermill-nats": "watermill-and-why-not-watermill-nats",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
}
