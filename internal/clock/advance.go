package clock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// AdvanceError is a refused <prefix>.dev.clock.advance request. Field names
// the part at fault ("seconds", or "body" for the payload as a whole);
// Detail says what is wrong, in French, as the commands' invalid_request
// replies do.
type AdvanceError struct{ Field, Detail string }

func (e *AdvanceError) Error() string {
	return fmt.Sprintf("dev clock advance: %s %s", e.Field, e.Detail)
}

var (
	errNotPositive = &AdvanceError{"seconds", "doit être un nombre entier de secondes strictement positif"}
	errTooLarge    = &AdvanceError{"seconds", fmt.Sprintf("ne peut dépasser %d secondes (10 ans) par requête", int64(MaxAdvance/time.Second))}
	errOffset      = &AdvanceError{"seconds", "porterait l'horloge de développement à plus de 100 ans d'avance"}
)

// maxAdvanceBody bounds the request: {"seconds": N} fits in a few bytes.
const maxAdvanceBody = 1 << 10

// ParseAdvance reads an advance request, {"seconds": N}: one JSON object,
// no other field, N an integer literal with 1 <= N <= MaxAdvance in
// seconds. "60", 1.5, 1e3, null and a missing field are refused.
func ParseAdvance(body []byte) (time.Duration, error) {
	if len(body) > maxAdvanceBody || !utf8.Valid(body) {
		return 0, &AdvanceError{"body", "doit être un objet JSON court en UTF-8 : {\"seconds\": N}"}
	}
	var req struct {
		Seconds json.RawMessage `json:"seconds"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return 0, &AdvanceError{"body", "doit être un objet JSON {\"seconds\": N} sans autre champ"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, &AdvanceError{"body", "doit contenir un seul objet JSON"}
	}
	raw := string(req.Seconds)
	if raw == "" || raw == "null" {
		return 0, &AdvanceError{"seconds", "est obligatoire"}
	}
	n, err := strconv.ParseInt(raw, 10, 64) // refuses "60", 1.5 and 1e3: none is an integer literal
	switch {
	case errors.Is(err, strconv.ErrRange) && raw[0] != '-':
		return 0, errTooLarge
	case err != nil, n <= 0:
		return 0, errNotPositive
	case n > int64(MaxAdvance/time.Second):
		return 0, errTooLarge
	}
	return time.Duration(n) * time.Second, nil
}

// ApplyAdvance parses an advance request and moves d by it: the one path
// the commands service (which answers) and the other components (which
// follow) all take, so they accept and refuse the same requests and their
// clocks stay together.
func (d *Dev) ApplyAdvance(body []byte) (time.Time, error) {
	by, err := ParseAdvance(body)
	if err != nil {
		return d.Now(), err
	}
	return d.Advance(by)
}
