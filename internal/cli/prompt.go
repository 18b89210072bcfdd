package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// errNoInput: standard input ended before an answer.
var errNoInput = errors.New("fin de l'entrée standard avant la réponse")

// prompter asks questions on out and reads the answers from in, one line
// each. When in is a terminal, secrets are read without echo; otherwise
// (a pipe, a test) they are read as a line like any answer.
type prompter struct {
	r   *bufio.Reader
	out io.Writer
	tty *os.File // in, when it is a terminal
}

func newPrompter(in io.Reader, out io.Writer) *prompter {
	p := &prompter{r: bufio.NewReader(in), out: out}
	if f, ok := terminal(in); ok {
		p.tty = f
	}
	return p
}

// terminal tells whether v is a file open on a terminal.
func terminal(v any) (*os.File, bool) {
	f, ok := v.(*os.File)
	if !ok || f == nil {
		return nil, false
	}
	return f, term.IsTerminal(int(f.Fd()))
}

func (p *prompter) line(prompt string) (string, error) {
	fmt.Fprint(p.out, prompt)
	s, err := p.r.ReadString('\n')
	if p.tty == nil {
		// A terminal echoes the answer and its newline; a pipe does not:
		// end the prompt's line so the output stays readable.
		fmt.Fprintln(p.out)
	}
	if err != nil && (!errors.Is(err, io.EOF) || s == "") {
		if errors.Is(err, io.EOF) {
			return "", errNoInput
		}
		return "", err
	}
	return strings.TrimSpace(s), nil
}

// secret reads an answer without echo on a terminal.
func (p *prompter) secret(prompt string) (string, error) {
	if p.tty == nil {
		return p.line(prompt)
	}
	fmt.Fprint(p.out, prompt)
	b, err := term.ReadPassword(int(p.tty.Fd()))
	fmt.Fprintln(p.out)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// yesNo asks a question answered by o(ui) or n(on); an empty answer is def.
func (p *prompter) yesNo(prompt string, def bool) (bool, error) {
	for {
		s, err := p.line(prompt)
		if err != nil {
			return false, err
		}
		switch strings.ToLower(s) {
		case "":
			return def, nil
		case "o", "oui", "y", "yes":
			return true, nil
		case "n", "non", "no":
			return false, nil
		}
		fmt.Fprintln(p.out, "Merci de répondre o (oui) ou n (non).")
	}
}

// Times shown to people are in Paris time.

// hourParis: "14h45".
func hourParis(t time.Time) string {
	p := t.In(domain.Paris)
	return fmt.Sprintf("%02dh%02d", p.Hour(), p.Minute())
}

// dayHourParis: "05/01/2023 14h45".
func dayHourParis(t time.Time) string {
	return t.In(domain.Paris).Format("02/01/2006 15h04")
}

// stampParis: "05/01/2023 14:30:00", the events table's TIME column.
func stampParis(t time.Time) string {
	return t.In(domain.Paris).Format("02/01/2006 15:04:05")
}
