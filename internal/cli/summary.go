package cli

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// hiddenFields are data fields never shown in the table besides those
// ending in _sealed or _hash: notice_to is a sealed address, and a public
// key is long and says nothing to a reader (jsonl has it).
var hiddenFields = map[string]bool{"notice_to": true, "public_key": true}

// hiddenField tells whether a data field stays out of DETAILS: sealed
// values, keyed hashes and password hashes.
func hiddenField(name string) bool {
	return strings.HasSuffix(name, "_sealed") || strings.HasSuffix(name, "_hash") || hiddenFields[name]
}

// summarize is the DETAILS column: the event's data as name=value pairs in
// the type's field order, without secrets, empty values, or the times equal
// to the event's own (the TIME column). Times are in Paris.
func summarize(env events.Envelope) string {
	v := reflect.ValueOf(env.Data)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	t := v.Type()
	parts := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if hiddenField(name) {
			continue
		}
		if name == "channel" && v.Field(i).String() == env.Channel {
			continue // the CHANNEL column says it
		}
		if s, ok := formatValue(v.Field(i), env.OccurredAt); ok {
			parts = append(parts, name+"="+s)
		}
	}
	return strings.Join(parts, " ")
}

var timeType = reflect.TypeFor[time.Time]()

func formatValue(v reflect.Value, occurred time.Time) (string, bool) {
	if v.Type() == timeType {
		t := v.Interface().(time.Time)
		if t.IsZero() || t.Equal(occurred) {
			return "", false
		}
		return dayHourParis(t), true
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true // false says something too (email_validated)
	case reflect.String:
		s := v.String()
		// A sealed value ("v1.…") is never shown, whatever its field name.
		if s == "" || strings.HasPrefix(s, "v1.") {
			return "", false
		}
		if r := []rune(s); len(r) > 40 {
			s = string(r[:39]) + "…"
		}
		if strings.ContainsAny(s, " \t\"=") {
			s = strconv.Quote(s)
		}
		return s, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.IsZero() {
			return "", false
		}
		return fmt.Sprint(v.Interface()), true
	}
	return "", false // slices, maps, structs: not in a one-line summary
}
