package projector

import (
	"encoding/binary"
	"strings"
	"time"
	"unicode/utf8"
)

// copyData is a COPY ... (FORMAT binary) payload, built before the
// transaction opens: inside it, the rows only stream to the server, which
// reads each field with a memcpy instead of parsing text.
type copyData struct{ b []byte }

// pgEpochMicros is 2000-01-01 00:00:00 UTC in Unix microseconds: binary
// timestamps count microseconds from there.
const pgEpochMicros = 946684800 * 1_000_000

func newCopyData(sizeHint int) *copyData {
	c := &copyData{b: make([]byte, 0, 19+sizeHint+2)}
	c.start()
	return c
}

// start writes the header into an empty payload.
func (c *copyData) start() {
	c.b = append(c.b, "PGCOPY\n\xff\r\n\x00"...)
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // flags
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // header extension length
}

// bytes ends the payload.
func (c *copyData) bytes() []byte {
	return binary.BigEndian.AppendUint16(c.b, 0xffff)
}

func (c *copyData) row(fields int) { c.b = binary.BigEndian.AppendUint16(c.b, uint16(fields)) }

func (c *copyData) null() { c.b = binary.BigEndian.AppendUint32(c.b, 0xffffffff) }

// text writes a string. Postgres refuses NUL in text: a NUL that came in
// an event (a user agent, a device id) is dropped rather than stopping
// the projection forever.
func (c *copyData) text(s string) {
	s = cleanText(s)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

// textOrNull writes "" as NULL.
func (c *copyData) textOrNull(s string) {
	if s == "" {
		c.null()
		return
	}
	c.text(s)
}

func (c *copyData) int8(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

func (c *copyData) int4(v int32) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(v))
}

func (c *copyData) bool(v bool) {
	c.b = binary.BigEndian.AppendUint32(c.b, 1)
	if v {
		c.b = append(c.b, 1)
	} else {
		c.b = append(c.b, 0)
	}
}

func (c *copyData) time(t time.Time) {
	c.int8(t.UnixMicro() - pgEpochMicros)
}

// timeOrNull writes the zero time as NULL.
func (c *copyData) timeOrNull(t time.Time) {
	if t.IsZero() {
		c.null()
		return
	}
	c.time(t)
}

func cleanText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}
