// Package schemacheck validates events, requests and replies against the
// JSON Schemas of the wire contract (package schemas), so tests can prove
// that what the code emits is what the schemas promise to other teams.
//
// The schemas are compiled once, with format assertions on: a date-time that
// is not RFC 3339 fails, as does an IP address that is not one.
package schemacheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/ameli-auth/authsvc/schemas"
)

// BaseURL is the prefix of every schema's $id; the rest is its path in
// schemas.FS.
const BaseURL = "https://schemas.ameli-auth.example/"

const (
	envelopePath = "events/envelope.json"
	replyPath    = "replies/reply.json"
)

type compiled struct {
	envelope   *jsonschema.Schema
	reply      *jsonschema.Schema
	commands   map[string]*jsonschema.Schema // subject -> request schema
	fraud      map[string]*jsonschema.Schema // fraud event type -> message schema
	eventTypes []string
}

// ErrNoSchema is returned for a command subject without a schema.
var ErrNoSchema = errors.New("schemacheck: no schema")

var (
	once    sync.Once
	all     *compiled
	errLoad error
	printer = message.NewPrinter(language.English)
)

// load compiles every schema of schemas.FS, once.
func load() (*compiled, error) {
	once.Do(func() { all, errLoad = compileFS(schemas.FS) })
	return all, errLoad
}

func compileFS(fsys fs.FS) (*compiled, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	// Every schema is added as a resource: nothing is loaded from the
	// network or the disk, and $refs resolve between them by $id.
	var paths []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || path.Ext(p) != ".json" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("schemacheck: read %s: %w", p, err)
		}
		m, _ := doc.(map[string]any)
		if id, _ := m["$id"].(string); id != BaseURL+p {
			return fmt.Errorf("schemacheck: %s has $id %q, want %q", p, id, BaseURL+p)
		}
		if err := c.AddResource(BaseURL+p, doc); err != nil {
			return fmt.Errorf("schemacheck: add %s: %w", p, err)
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := &compiled{commands: map[string]*jsonschema.Schema{}, fraud: map[string]*jsonschema.Schema{}}
	for _, p := range paths {
		sch, err := c.Compile(BaseURL + p)
		if err != nil {
			return nil, fmt.Errorf("schemacheck: compile %s: %w", p, err)
		}
		dir, file := path.Split(p)
		name := strings.TrimSuffix(file, ".json")
		switch {
		case p == envelopePath:
			out.envelope = sch
		case p == replyPath:
			out.reply = sch
		case dir == "events/":
			out.eventTypes = append(out.eventTypes, name)
		case dir == "commands/":
			out.commands[name] = sch
		case dir == "fraud/":
			out.fraud[name] = sch
		}
	}
	if out.envelope == nil || out.reply == nil {
		return nil, fmt.Errorf("schemacheck: %s or %s missing", envelopePath, replyPath)
	}
	sort.Strings(out.eventTypes)
	return out, nil
}

// ValidateEvent checks one stream message body (an envelope as
// events.Marshal writes it), its data against its type's schema.
func ValidateEvent(raw []byte) error {
	c, err := load()
	if err != nil {
		return err
	}
	return validate(c.envelope, BaseURL+envelopePath, raw)
}

// ValidateFraudEvent checks one message body of the AUTH_FRAUD stream
// against its type's schema (schemas/fraud/<type>.json).
func ValidateFraudEvent(raw []byte) error {
	c, err := load()
	if err != nil {
		return err
	}
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw, &head)
	sch, ok := c.fraud[head.Type]
	if !ok {
		return fmt.Errorf("%w for fraud event type %q", ErrNoSchema, head.Type)
	}
	return validate(sch, BaseURL+"fraud/"+head.Type+".json", raw)
}

// FraudEventTypes lists the fraud event types that have a schema, sorted.
func FraudEventTypes() []string {
	c, err := load()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(c.fraud))
	for t := range c.fraud {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ValidateReply checks one reply body.
func ValidateReply(raw []byte) error {
	c, err := load()
	if err != nil {
		return err
	}
	return validate(c.reply, BaseURL+replyPath, raw)
}

// ValidateCommand checks one request body against its subject's schema.
// subject is without the "auth.cmd." prefix ("login.password"); the dev
// clock's is "dev.clock.advance".
func ValidateCommand(subject string, raw []byte) error {
	c, err := load()
	if err != nil {
		return err
	}
	sch, ok := c.commands[subject]
	if !ok {
		return fmt.Errorf("%w for command %q", ErrNoSchema, subject)
	}
	return validate(sch, BaseURL+"commands/"+subject+".json", raw)
}

// EventTypes lists the event types that have a schema, sorted.
func EventTypes() []string {
	c, err := load()
	if err != nil {
		return nil
	}
	return append([]string(nil), c.eventTypes...)
}

// Commands lists the command subjects that have a schema, sorted.
func Commands() []string {
	c, err := load()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(c.commands))
	for s := range c.commands {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func validate(sch *jsonschema.Schema, url string, raw []byte) error {
	if !json.Valid(raw) {
		return fmt.Errorf("schema %s: instance is not valid JSON", url)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("schema %s: read instance: %w", url, err)
	}
	err = sch.Validate(doc)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return fmt.Errorf("schema %s: %w", url, err)
	}
	return &Error{Schema: url, Violations: leaves(ve, nil)}
}

// Error is a failed validation: the schema validated against and each
// violation, at its place in the instance.
type Error struct {
	Schema     string
	Violations []Violation
}

// Violation is one keyword that failed.
type Violation struct {
	InstanceLocation string // JSON pointer in the instance, "" for the root
	KeywordLocation  string // absolute: the schema's $id and the keyword's pointer
	Message          string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "schema %s: %d violation(s)", e.Schema, len(e.Violations))
	for _, v := range e.Violations {
		loc := v.InstanceLocation
		if loc == "" {
			loc = "(root)"
		}
		fmt.Fprintf(&b, "\n  at %s [%s]: %s", loc, v.KeywordLocation, v.Message)
	}
	return b.String()
}

// leaves collects the violations that caused the others: the keywords
// that failed on their own, not the allOf/if-then/$ref that wrap them.
func leaves(e *jsonschema.ValidationError, out []Violation) []Violation {
	if len(e.Causes) == 0 {
		return append(out, Violation{
			InstanceLocation: pointer(e.InstanceLocation),
			KeywordLocation:  e.SchemaURL + pointer(e.ErrorKind.KeywordPath()),
			Message:          e.ErrorKind.LocalizedString(printer),
		})
	}
	for _, c := range e.Causes {
		out = leaves(c, out)
	}
	return out
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}
