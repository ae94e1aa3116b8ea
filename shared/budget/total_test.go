package budget_test

import (
	"math"
	"testing"

	"github.com/unitenant/unitenant/shared/budget"
)

// TestTotal: a Total parses and formats back exactly, far past an Amount's
// range and down to its own ends, compares with == whatever it was made
// from, and refuses to wrap.
func TestTotal(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"0.000000", "0.000001", "-0.000001", "-1.500000", "12.345678",
		"99999999999999.999999", "-99999999999999.999999", "118453372036853.683507",
		"9223372036854775807.999999", "-9223372036854775808.000000", "-9223372036854775807.000001",
	} {
		got, err := budget.ParseTotal(s)
		if err != nil || got.String() != s {
			t.Errorf("ParseTotal(%q) = %s, %v; want it back", s, got, err)
		}
	}
	for _, bad := range []string{"", "-", "1.2345678", "1e3", "9223372036854775808", "-9223372036854775808.000001"} {
		if got, err := budget.ParseTotal(bad); err == nil {
			t.Errorf("ParseTotal(%q) = %s, want an error", bad, got)
		}
	}
	for _, a := range []budget.Amount{0, 1, -1, -1_500_000, budget.MaxAmount, math.MaxInt64, math.MinInt64} {
		if got, want := budget.TotalOf(a), budget.MustParseTotal(a.String()); got != want {
			t.Errorf("TotalOf(%s) = %s, want %s", a, got, want)
		}
	}
	if got := budget.MustParseTotal("-0"); got != (budget.Total{}) {
		t.Errorf("-0 is %s, want the zero Total", got)
	}

	sum := budget.TotalOf(math.MaxInt64)
	for _, a := range []budget.Amount{math.MaxInt64, 1, -1_000_001} {
		var err error
		if sum, err = sum.Add(budget.TotalOf(a)); err != nil {
			t.Fatal(err)
		}
	}
	if want := "18446744073708.551614"; sum.String() != want { // 2·(2⁶³-1) + 1 - 1000001 micro-units
		t.Errorf("sum %s, want %s", sum, want)
	}
	for _, tc := range []struct{ a, b, sum string }{
		{"1.500000", "-2.250000", "-0.750000"}, {"-0.500000", "-0.500000", "-1.000000"}, {"-0.000001", "0.000001", "0.000000"},
		{"99999999999999.999999", "99999999999999.999999", "199999999999999.999998"},
	} {
		if got, err := budget.MustParseTotal(tc.a).Add(budget.MustParseTotal(tc.b)); err != nil || got.String() != tc.sum {
			t.Errorf("%s + %s = %s, %v; want %s", tc.a, tc.b, got, err, tc.sum)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"9223372036854775807.999999", "0.000001"},
		{"-9223372036854775808.000000", "-0.000001"},
		{"9223372036854775807.000000", "9223372036854775807.000000"},
	} {
		if got, err := budget.MustParseTotal(tc.a).Add(budget.MustParseTotal(tc.b)); err == nil {
			t.Errorf("%s + %s = %s, want an out of range error", tc.a, tc.b, got)
		}
	}
	if got, err := budget.MustParseTotal("-9223372036854775807.999999").Add(budget.MustParseTotal("-0.000001")); err != nil || got.String() != "-9223372036854775808.000000" {
		t.Errorf("down to the last micro-unit: %s, %v", got, err)
	}
}
