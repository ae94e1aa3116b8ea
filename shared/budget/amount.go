package budget

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Amount is money in micro-units (10⁻⁶ of the currency): exact, because
// token prices (DECIMAL(12,6)) and call-log costs (DECIMAL(20,6)) have six
// decimals. Balances and reservations (DECIMAL(14,4)) hold multiples of
// AccountStep. Amounts travel to and from MySQL as decimal strings, never as
// float64.
type Amount int64

// Amount units.
const (
	Micro       Amount = 1
	Unit        Amount = 1_000_000
	AccountStep Amount = 100 // the smallest amount tenant_accounts holds: DECIMAL(14,4)

	// MaxAmount is the largest amount DECIMAL(14,4) holds; Estimate and Cost
	// saturate at it instead of overflowing. Every money column records it
	// (infra/schema/system/0011): a call's cost, and sums of such costs.
	MaxAmount Amount = 99_999_999_999_999 * AccountStep
)

// ParseAmount parses a decimal such as "12.34", "-0.000001" or "7" (at most
// six decimals), as MySQL returns DECIMAL columns. Every Amount parses,
// down to the last micro-unit of either end of its range; a value beyond
// it is an error, never a wrapped Amount.
func ParseAmount(s string) (Amount, error) {
	neg, digits, err := decimalDigits(s)
	if err != nil {
		return 0, err
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // -2⁶³ has no positive counterpart
	}
	m, ok := accumulate(digits, limit)
	if !ok {
		return 0, fmt.Errorf("parse amount %q: out of range", s)
	}
	if neg {
		return Amount(-m), nil // two's complement: -2⁶³ too
	}
	return Amount(m), nil
}

// decimalDigits checks that s is a decimal with at most six places and
// returns its sign and its digits as micro-units (the decimals padded to
// six).
func decimalDigits(s string) (neg bool, digits string, err error) {
	in := s
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 6 {
		return false, "", fmt.Errorf("parse amount %q: want a decimal with at most 6 places", in)
	}
	digits = whole + frac + strings.Repeat("0", 6-len(frac))
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false, "", fmt.Errorf("parse amount %q: unexpected %q", in, c)
		}
	}
	return neg, digits, nil
}

// accumulate is the value of the decimal digits, if at most limit.
func accumulate(digits string, limit uint64) (uint64, bool) {
	var v uint64
	for _, c := range digits {
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// MustParseAmount is ParseAmount for constants; it panics on a bad literal.
func MustParseAmount(s string) Amount {
	a, err := ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

// String formats a with six decimals ("12.340000"), which MySQL reads back
// exactly through CAST(? AS DECIMAL(20,6)).
func (a Amount) String() string {
	sign, m := "", uint64(a)
	if a < 0 {
		sign, m = "-", -m // the magnitude, -2⁶³'s included
	}
	return fmt.Sprintf("%s%d.%06d", sign, m/uint64(Unit), m%uint64(Unit))
}

// Ceil rounds a up to a multiple of step (toward +∞).
func (a Amount) Ceil(step Amount) Amount {
	r := a % step
	switch {
	case r == 0:
		return a
	case r > 0:
		return a - r + step
	default:
		return a - r
	}
}

// Round rounds a to the nearest multiple of step, halves away from zero
// (as MySQL rounds DECIMAL).
func (a Amount) Round(step Amount) Amount {
	if a < 0 {
		return -(-a).Round(step)
	}
	r := a % step
	if 2*r >= step {
		return a - r + step
	}
	return a - r
}

// Estimate is the worst-case cost of a call: its prompt tokens at the input
// price plus max_tokens of output at the output price (prices per 1000
// tokens), rounded up to the micro-unit. Reserve it before the call.
func Estimate(promptTokens, maxTokens int, inPricePer1k, outPricePer1k Amount) Amount {
	return perThousand(promptTokens, maxTokens, inPricePer1k, outPricePer1k, true)
}

// Cost is the real cost of a call from the tokens the provider reported,
// rounded half up to the micro-unit (the precision of ai_service_call_logs.cost).
// Settle rounds it again to AccountStep.
func Cost(inputTokens, outputTokens int, inPricePer1k, outPricePer1k Amount) Amount {
	return perThousand(inputTokens, outputTokens, inPricePer1k, outPricePer1k, false)
}

// perThousand computes (in·inPrice + out·outPrice) / 1000 exactly (big
// integers: tokens × prices can exceed int64), saturating at [0, MaxAmount].
func perThousand(in, out int, inPrice, outPrice Amount, up bool) Amount {
	sum := new(big.Int).Mul(big.NewInt(int64(max(in, 0))), big.NewInt(int64(max(inPrice, 0))))
	sum.Add(sum, new(big.Int).Mul(big.NewInt(int64(max(out, 0))), big.NewInt(int64(max(outPrice, 0)))))
	if up {
		sum.Add(sum, big.NewInt(999))
	} else {
		sum.Add(sum, big.NewInt(500))
	}
	sum.Quo(sum, big.NewInt(1000))
	if !sum.IsInt64() || Amount(sum.Int64()) > MaxAmount {
		return MaxAmount
	}
	return Amount(sum.Int64())
}
