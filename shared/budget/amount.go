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
// six decimals), as MySQL returns DECIMAL columns.
func ParseAmount(s string) (Amount, error) {
	in := s
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 6 {
		return 0, fmt.Errorf("parse amount %q: want a decimal with at most 6 places", in)
	}
	var v int64
	for _, part := range []string{whole, frac + strings.Repeat("0", 6-len(frac))} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("parse amount %q: unexpected %q", in, c)
			}
			if v > (math.MaxInt64-9)/10 {
				return 0, fmt.Errorf("parse amount %q: out of range", in)
			}
			v = v*10 + int64(c-'0')
		}
	}
	if neg {
		v = -v
	}
	return Amount(v), nil
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
	sign, v := "", int64(a)
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%06d", sign, v/int64(Unit), v%int64(Unit))
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
