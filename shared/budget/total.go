package budget

import (
	"fmt"
	"math"
)

// Total is a sum of amounts, exact where an Amount would overflow: no one
// amount the bridge computes passes MaxAmount, but what one Reconcile run
// charges, the cost a tenant's day sums to (its columns, DECIMAL(20,6), hold
// up to 99999999999999.999999) or the day's over every tenant can pass an
// Amount's range, ±9223372036854.775807. It keeps whole units and
// micro-units apart, so it holds ±9.2·10¹⁸ units to the micro-unit. The zero
// value is 0, and totals compare with ==.
type Total struct {
	units int64 // whole units, rounded toward -∞
	micro int64 // the rest: 0 to Unit-1
}

// TotalOf is a as a Total.
func TotalOf(a Amount) Total {
	t := Total{units: int64(a / Unit), micro: int64(a % Unit)}
	if t.micro < 0 {
		t.units, t.micro = t.units-1, t.micro+int64(Unit)
	}
	return t
}

// Add returns t + u, or an error when the sum is past a Total's range.
func (t Total) Add(u Total) (Total, error) {
	micro := t.micro + u.micro
	carry := micro / int64(Unit) // 0 or 1
	// A negative addend takes the carry without overflowing: only the
	// sum can be out of range, not a step on the way to it.
	lo, hi := min(t.units, u.units), max(t.units, u.units)
	var (
		units int64
		ok    bool
	)
	if lo < 0 {
		units, ok = addInt64(lo+carry, hi)
	} else if units, ok = addInt64(lo, hi); ok {
		units, ok = addInt64(units, carry)
	}
	if !ok {
		return Total{}, fmt.Errorf("%s + %s: out of range", t, u)
	}
	return Total{units: units, micro: micro % int64(Unit)}, nil
}

// addInt64 is a + b, unless it overflows.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// ParseTotal parses a decimal with at most six places, as MySQL returns
// sums of DECIMAL columns ("109223372036854.775806"); a value past a
// Total's range is an error.
func ParseTotal(s string) (Total, error) {
	neg, digits, err := decimalDigits(s)
	if err != nil {
		return Total{}, err
	}
	whole, frac := digits[:len(digits)-6], digits[len(digits)-6:]
	micro, _ := accumulate(frac, math.MaxUint64) // six digits
	limit := uint64(math.MaxInt64)
	if neg && micro == 0 {
		limit++ // -2⁶³ has no positive counterpart
	}
	units, ok := accumulate(whole, limit)
	switch {
	case !ok:
		return Total{}, fmt.Errorf("parse total %q: out of range", s)
	case !neg:
		return Total{units: int64(units), micro: int64(micro)}, nil
	case micro == 0:
		return Total{units: int64(-units)}, nil // two's complement: -2⁶³ too
	default:
		return Total{units: -int64(units) - 1, micro: int64(Unit) - int64(micro)}, nil
	}
}

// MustParseTotal is ParseTotal for constants; it panics on a bad literal.
func MustParseTotal(s string) Total {
	t, err := ParseTotal(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String formats t with six decimals, as MySQL reads it back exactly
// through CAST(? AS DECIMAL(65,6)).
func (t Total) String() string {
	switch {
	case t.units >= 0:
		return fmt.Sprintf("%d.%06d", t.units, t.micro)
	case t.micro == 0:
		return fmt.Sprintf("-%d.000000", -uint64(t.units)) // -2⁶³'s magnitude too
	default:
		return fmt.Sprintf("-%d.%06d", -(t.units + 1), int64(Unit)-t.micro)
	}
}

// clamp is t limited to [lo, hi].
func (t Total) clamp(lo, hi Amount) Amount {
	switch {
	case t.less(TotalOf(lo)):
		return lo
	case TotalOf(hi).less(t):
		return hi
	}
	// In an Amount's range; units·Unit may pass it below by less than
	// Unit, and wraps back (Go's signed arithmetic wraps).
	return Amount(t.units)*Unit + Amount(t.micro)
}

// less reports whether t < u.
func (t Total) less(u Total) bool {
	return t.units < u.units || t.units == u.units && t.micro < u.micro
}
