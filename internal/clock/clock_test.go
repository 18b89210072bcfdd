package clock

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestParseAdvance(t *testing.T) {
	maxSeconds := strconv.FormatInt(int64(MaxAdvance/time.Second), 10)
	for _, c := range []struct {
		name, body string
		want       time.Duration
		field      string // "" when accepted
	}{
		{"fifteen_minutes", `{"seconds":900}`, 15 * time.Minute, ""},
		{"spaces_around_the_value", `{ "seconds" : 60 }`, time.Minute, ""},
		{"one_second_the_smallest_step", `{"seconds":1}`, time.Second, ""},
		{"ten_years_the_largest_step", `{"seconds":` + maxSeconds + `}`, MaxAdvance, ""},
		{"one_second_more_than_ten_years", `{"seconds":` + strconv.FormatInt(int64(MaxAdvance/time.Second)+1, 10) + `}`, 0, "seconds"},
		{"missing_seconds", `{}`, 0, "seconds"},
		{"null_seconds", `{"seconds":null}`, 0, "seconds"},
		{"zero", `{"seconds":0}`, 0, "seconds"},
		{"minus_zero", `{"seconds":-0}`, 0, "seconds"},
		{"negative", `{"seconds":-60}`, 0, "seconds"},
		{"fraction", `{"seconds":1.5}`, 0, "seconds"},
		{"exponent", `{"seconds":1e3}`, 0, "seconds"},
		{"string", `{"seconds":"60"}`, 0, "seconds"},
		{"boolean", `{"seconds":true}`, 0, "seconds"},
		{"the_overflowing_request_of_issue_11", `{"seconds":9223372036}`, 0, "seconds"},
		{"beyond_int64", `{"seconds":92233720368547758070}`, 0, "seconds"},
		{"below_int64", `{"seconds":-92233720368547758070}`, 0, "seconds"},
		{"unknown_field", `{"seconds":60,"minutes":1}`, 0, "body"},
		{"not_an_object", `60`, 0, "body"},
		{"two_objects", `{"seconds":60}{"seconds":60}`, 0, "body"},
		{"empty_body", ``, 0, "body"},
		{"not_json", `{"seconds":`, 0, "body"},
		{"invalid_utf8", "{\"seconds\":60,\"\xff\":1}", 0, "body"},
		{"too_long", `{"seconds":` + string(make([]byte, 2000)) + `}`, 0, "body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseAdvance([]byte(c.body))
			if c.field == "" {
				if err != nil || got != c.want {
					t.Fatalf("got %v, %v; want %v", got, err, c.want)
				}
				return
			}
			var ae *AdvanceError
			if !errors.As(err, &ae) || ae.Field != c.field || ae.Detail == "" {
				t.Fatalf("got %v, %v; want a refusal naming %q", got, err, c.field)
			}
		})
	}
}

func TestDevAdvanceNeverWraps(t *testing.T) {
	for _, c := range []struct {
		name    string
		earlier []time.Duration // accepted steps before
		step    time.Duration
		refused bool
	}{
		{"first_step", nil, 15 * time.Minute, false},
		{"the_largest_step", nil, MaxAdvance, false},
		{"a_step_larger_than_ten_years", nil, MaxAdvance + time.Second, true},
		{"zero", nil, 0, true},
		{"negative", nil, -time.Hour, true},
		{"the_largest_int64", nil, math.MaxInt64, true},
		{"up_to_exactly_100_years", repeat(MaxAdvance, 9), MaxOffset - 9*MaxAdvance, false},
		{"one_second_past_100_years", repeat(MaxAdvance, 10), time.Second, true},
		{"after_earlier_steps_a_step_that_would_overflow_int64", repeat(MaxAdvance, 10), MaxAdvance, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &Dev{}
			for _, e := range c.earlier {
				if _, err := d.Advance(e); err != nil {
					t.Fatalf("earlier step %v: %v", e, err)
				}
			}
			before := d.Offset()
			now, err := d.Advance(c.step)
			if c.refused {
				if err == nil || d.Offset() != before {
					t.Fatalf("step %v after %v: err=%v, offset %v", c.step, before, err, d.Offset())
				}
			} else if err != nil || d.Offset() != before+c.step {
				t.Fatalf("step %v after %v: err=%v, offset %v", c.step, before, err, d.Offset())
			}
			// The clock is never behind the system clock, never past the ceiling.
			if sys := time.Now(); now.Before(sys.Add(-time.Minute)) || d.Offset() < 0 || d.Offset() > MaxOffset {
				t.Fatalf("clock at %v (offset %v)", now, d.Offset())
			}
		})
	}
}

// The request of issue 11, after earlier advances: it used to wrap the
// offset and move the clock to the year 1734.
func TestApplyAdvanceRefusesTheOverflowAfterEarlierAdvances(t *testing.T) {
	d := &Dev{}
	for i := 0; i < 3; i++ {
		if _, err := d.ApplyAdvance([]byte(`{"seconds":315360000}`)); err != nil {
			t.Fatal(err)
		}
	}
	before := d.Offset()
	now, err := d.ApplyAdvance([]byte(`{"seconds":9223372036}`))
	var ae *AdvanceError
	if !errors.As(err, &ae) || ae.Field != "seconds" {
		t.Fatalf("err = %v", err)
	}
	if d.Offset() != before || now.Year() < time.Now().Year()+29 {
		t.Fatalf("clock moved to %v (offset %v, was %v)", now, d.Offset(), before)
	}
	// Up to the ceiling, then no further.
	for i := 0; i < 7; i++ {
		if _, err := d.ApplyAdvance([]byte(`{"seconds":315360000}`)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if d.Offset() != MaxOffset {
		t.Fatalf("offset %v, want %v", d.Offset(), MaxOffset)
	}
	if _, err := d.ApplyAdvance([]byte(`{"seconds":1}`)); err == nil {
		t.Fatal("a step past 100 years was accepted")
	}
}

// Concurrent requests cannot together pass the ceiling.
func TestDevAdvanceConcurrentStaysUnderTheCeiling(t *testing.T) {
	d := &Dev{}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = d.Advance(MaxAdvance) }()
	}
	wg.Wait()
	if d.Offset() != 10*MaxAdvance {
		t.Fatalf("offset %v, want %v", d.Offset(), 10*MaxAdvance)
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// Raise moves a dev clock to a kept or followed offset, never back; an
// accepted Advance reports the new offset, a refused one nothing.
func TestDevRaiseAndOnAdvance(t *testing.T) {
	var d Dev
	var seen []time.Duration
	d.OnAdvance(func(o time.Duration) { seen = append(seen, o) })
	if !d.Raise(time.Hour) || d.Offset() != time.Hour {
		t.Fatalf("raise to 1h: offset %v", d.Offset())
	}
	if d.Raise(time.Minute) || d.Offset() != time.Hour {
		t.Fatalf("raise to 1m moved the clock back: offset %v", d.Offset())
	}
	if _, err := d.Advance(time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Advance(-time.Minute); err == nil {
		t.Fatal("a negative step was accepted")
	}
	if len(seen) != 1 || seen[0] != time.Hour+time.Minute {
		t.Fatalf("OnAdvance saw %v, want [1h1m0s]", seen)
	}
	if d.Raise(MaxOffset + time.Hour); d.Offset() != MaxOffset {
		t.Fatalf("raise past MaxOffset: offset %v", d.Offset())
	}
}

func TestMillisKeepsTheMillisecond(t *testing.T) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 123_456_789, time.UTC)
	if got := (Millis{Clock: NewFixed(at)}).Now(); !got.Equal(time.Date(2023, 1, 5, 13, 30, 0, 123_000_000, time.UTC)) {
		t.Fatalf("Millis: %s", got.Format(time.RFC3339Nano))
	}
}
