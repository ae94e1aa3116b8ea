package budget_test

import (
	"math"
	"testing"

	"github.com/unitenant/unitenant/shared/budget"
)

func TestParseAmount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want budget.Amount
	}{
		{"0", 0}, {"12.34", 12_340_000}, {"-0.000001", -1}, {"7.", 7_000_000}, {".5", 500_000},
		{"9999999999.9999", budget.MaxAmount}, {"0.123456", 123_456}, {"+1.5", 1_500_000},
	} {
		got, err := budget.ParseAmount(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-", ".", "1.2345678", "1e3", "1,5", "99999999999999999999"} {
		if got, err := budget.ParseAmount(bad); err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an error", bad, got)
		}
	}
}

func TestAmountString(t *testing.T) {
	t.Parallel()
	for a, want := range map[budget.Amount]string{0: "0.000000", 1: "0.000001", -1_500_000: "-1.500000", 12_345_678: "12.345678"} {
		if got := a.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(a), got, want)
		}
		if back, err := budget.ParseAmount(want); err != nil || back != a {
			t.Errorf("round trip of %q: %d, %v", want, back, err)
		}
	}
}

func TestRounding(t *testing.T) {
	t.Parallel()
	step := budget.AccountStep
	for _, tc := range []struct {
		a, ceil, round budget.Amount
	}{
		{0, 0, 0}, {1, 100, 0}, {49, 100, 0}, {50, 100, 100}, {100, 100, 100}, {151, 200, 200},
		{-1, 0, 0}, {-50, 0, -100}, {-151, -100, -200},
	} {
		if got := tc.a.Ceil(step); got != tc.ceil {
			t.Errorf("%d.Ceil = %d, want %d", int64(tc.a), got, tc.ceil)
		}
		if got := tc.a.Round(step); got != tc.round {
			t.Errorf("%d.Round = %d, want %d", int64(tc.a), got, tc.round)
		}
	}
}

func TestEstimateAndCost(t *testing.T) {
	t.Parallel()
	in, out := budget.MustParseAmount("0.0015"), budget.MustParseAmount("0.002") // per 1k tokens
	// 1234 prompt tokens, 1000 max tokens: 1.851 + 2 = 3.851 thousandths.
	if got, want := budget.Estimate(1234, 1000, in, out), budget.MustParseAmount("0.003851"); got != want {
		t.Errorf("Estimate = %s, want %s", got, want)
	}
	// 1 token at 0.0015/1k is 0.0000015: up for the estimate, half up for the cost.
	if got := budget.Estimate(1, 0, in, 0); got != 2 {
		t.Errorf("Estimate of 1 token = %d micro, want 2", got)
	}
	if got := budget.Cost(1, 0, in, 0); got != 2 {
		t.Errorf("Cost of 1 token = %d micro, want 2 (half up)", got)
	}
	if got := budget.Cost(1, 0, budget.MustParseAmount("0.0014"), 0); got != 1 {
		t.Errorf("Cost of 1 token at 0.0014 = %d micro, want 1", got)
	}
	if got := budget.Estimate(-5, -5, in, out); got != 0 {
		t.Errorf("Estimate of negative tokens = %s, want 0", got)
	}
	huge := budget.MustParseAmount("999999.999999")
	if got := budget.Estimate(1<<40, 1<<40, huge, huge); got != budget.MaxAmount {
		t.Errorf("Estimate past the range = %s, want MaxAmount", got)
	}
}

// TestAmountLimits: every int64 of micro-units is an Amount, and parses and
// formats back exactly, down to the last micro-unit of either end; one
// micro-unit past either end is an error, never a wrapped value.
func TestAmountLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a budget.Amount
		s string
	}{
		{math.MaxInt64, "9223372036854.775807"},
		{math.MaxInt64 - 7, "9223372036854.775800"},
		{math.MinInt64, "-9223372036854.775808"},
		{math.MinInt64 + 1, "-9223372036854.775807"},
	} {
		if got := tc.a.String(); got != tc.s {
			t.Errorf("%d.String() = %q, want %q", int64(tc.a), got, tc.s)
		}
		if got, err := budget.ParseAmount(tc.s); err != nil || got != tc.a {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", tc.s, int64(got), err, int64(tc.a))
		}
	}
	for _, bad := range []string{"9223372036854.775808", "-9223372036854.775809", "10000000000000", "92233720368547.75807"} {
		if got, err := budget.ParseAmount(bad); err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an out of range error", bad, int64(got))
		}
	}
}
