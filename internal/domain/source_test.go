package domain

import (
	"testing"
	"time"
)

// The source budget as a function of (count, window start, now, policy):
// given a source's state, when an attempt comes at a time, then it is
// refused or counted, and the count and throttle end that follow.
func TestSourceBudgetRule(t *testing.T) {
	t0 := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	day := 24 * time.Hour
	ip, prefix := SeedPolicy().SourceIP, SeedPolicy().SourcePrefix
	for _, tc := range []struct {
		name          string
		budget        SourceBudget
		given         SourceCount
		at            time.Time
		throttled     bool
		until         time.Time   // when throttled
		then          SourceCount // after counting it (when not throttled)
		reachesBudget bool
	}{
		{name: "first_failure_opens_a_window_of_24_hours", budget: ip, given: SourceCount{}, at: t0,
			then: SourceCount{Failures: 1, WindowStart: t0}},
		{name: "99th_failure_is_counted_and_leaves_one", budget: ip, given: SourceCount{Failures: 98, WindowStart: t0}, at: t0.Add(time.Hour),
			then: SourceCount{Failures: 99, WindowStart: t0}},
		{name: "100th_failure_is_counted_and_spends_the_budget", budget: ip, given: SourceCount{Failures: 99, WindowStart: t0}, at: t0.Add(time.Hour),
			then: SourceCount{Failures: 100, WindowStart: t0}, reachesBudget: true},
		{name: "101st_attempt_is_refused_until_the_window_ends", budget: ip, given: SourceCount{Failures: 100, WindowStart: t0}, at: t0.Add(time.Hour),
			throttled: true, until: t0.Add(day)},
		{name: "refused_a_second_before_the_window_ends", budget: ip, given: SourceCount{Failures: 100, WindowStart: t0}, at: t0.Add(day - time.Second),
			throttled: true, until: t0.Add(day)},
		{name: "window_ended_the_next_attempt_opens_a_new_one", budget: ip, given: SourceCount{Failures: 100, WindowStart: t0}, at: t0.Add(day),
			then: SourceCount{Failures: 1, WindowStart: t0.Add(day)}},
		{name: "old_window_under_budget_does_not_carry_over", budget: ip, given: SourceCount{Failures: 99, WindowStart: t0}, at: t0.Add(day + time.Minute),
			then: SourceCount{Failures: 1, WindowStart: t0.Add(day + time.Minute)}},
		{name: "prefix_999th_failure_is_counted", budget: prefix, given: SourceCount{Failures: 998, WindowStart: t0}, at: t0.Add(23 * time.Hour),
			then: SourceCount{Failures: 999, WindowStart: t0}},
		{name: "prefix_1000th_failure_spends_the_budget", budget: prefix, given: SourceCount{Failures: 999, WindowStart: t0}, at: t0.Add(23 * time.Hour),
			then: SourceCount{Failures: 1000, WindowStart: t0}, reachesBudget: true},
		{name: "prefix_1001st_attempt_is_refused", budget: prefix, given: SourceCount{Failures: 1000, WindowStart: t0}, at: t0.Add(23 * time.Hour),
			throttled: true, until: t0.Add(day)},
		{name: "a_short_window_of_2_failures_in_an_hour", budget: SourceBudget{Failures: 2, Window: time.Hour}, given: SourceCount{Failures: 2, WindowStart: t0}, at: t0.Add(59 * time.Minute),
			throttled: true, until: t0.Add(time.Hour)},
		{name: "a_disabled_budget_never_throttles", budget: SourceBudget{}, given: SourceCount{Failures: 1_000_000, WindowStart: t0}, at: t0,
			then: SourceCount{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			throttled, until := tc.budget.Throttled(tc.given, tc.at)
			if throttled != tc.throttled || !until.Equal(tc.until) {
				t.Fatalf("throttled %v until %s, want %v until %s", throttled, until, tc.throttled, tc.until)
			}
			if throttled || tc.budget.Failures == 0 {
				return
			}
			next, reached := tc.budget.Count(tc.given, tc.at)
			if next.Failures != tc.then.Failures || !next.WindowStart.Equal(tc.then.WindowStart) || reached != tc.reachesBudget {
				t.Fatalf("counted %+v (reached %v), want %+v (reached %v)", next, reached, tc.then, tc.reachesBudget)
			}
		})
	}
}

// An attempt given back (right password) frees its place in the window it
// was counted in, and only there.
func TestSourceBudgetUncount(t *testing.T) {
	t0 := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	b := SourceBudget{Failures: 3, Window: time.Hour}
	c, _ := b.Count(SourceCount{}, t0)
	c, _ = b.Count(c, t0.Add(time.Minute))
	c, reached := b.Count(c, t0.Add(2*time.Minute))
	if !reached {
		t.Fatal("the 3rd attempt did not reach a budget of 3")
	}
	if got := b.Uncount(c, t0.Add(2*time.Minute), t0.Add(3*time.Minute)); got.Failures != 2 {
		t.Errorf("given back in its window: %d failures, want 2", got.Failures)
	}
	if throttled, _ := b.Throttled(b.Uncount(c, t0.Add(2*time.Minute), t0.Add(3*time.Minute)), t0.Add(3*time.Minute)); throttled {
		t.Error("still throttled after an attempt was given back")
	}
	// Counted in a window that has ended: nothing to give back in the new one.
	next, _ := b.Count(c, t0.Add(time.Hour))
	if got := b.Uncount(next, t0.Add(2*time.Minute), t0.Add(time.Hour)); got.Failures != 1 {
		t.Errorf("given back across windows: %d failures, want 1", got.Failures)
	}
}

// Both profiles count sources, with a prefix budget above the address's.
func TestEveryProfileCountsSources(t *testing.T) {
	for _, name := range []string{"seed", "strict"} {
		p, _ := PolicyByName(name)
		if p.SourceIP.Failures < 1 || p.SourcePrefix.Failures <= p.SourceIP.Failures || p.SourceIP.Window <= 0 || p.SourcePrefix.Window <= 0 {
			t.Errorf("%s: source budgets %+v, %+v", name, p.SourceIP, p.SourcePrefix)
		}
	}
	p := SeedPolicy()
	p.SourceIP.Window = 0
	if p.Validate() == nil {
		t.Error("a source budget without a window was accepted")
	}
}
