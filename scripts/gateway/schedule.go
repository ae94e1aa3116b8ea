package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// schedule is a parsed EventBridge schedule expression.
type schedule interface {
	// next returns the first firing time strictly after t, and false if there is none.
	next(t time.Time) (time.Time, bool)
	// String returns the expression as written.
	String() string
}

// parseSchedule parses an EventBridge schedule expression: rate(N unit) or the 6-field
// AWS cron(minutes hours day-of-month month day-of-week year), evaluated in UTC. A rate
// counts from anchor (the gateway's start), as a new EventBridge rule counts from its
// creation.
func parseSchedule(expr string, anchor time.Time) (schedule, error) {
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		return parseRate(expr, anchor)
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		return parseCron(expr)
	default:
		return nil, fmt.Errorf("schedule %q: want rate(...) or cron(...)", expr)
	}
}

// rateSchedule fires every interval after anchor.
type rateSchedule struct {
	expr     string
	anchor   time.Time
	interval time.Duration
}

func parseRate(expr string, anchor time.Time) (*rateSchedule, error) {
	body := strings.TrimSuffix(strings.TrimPrefix(expr, "rate("), ")")
	fields := strings.Fields(body)
	if len(fields) != 2 {
		return nil, fmt.Errorf("schedule %q: want rate(<value> <unit>)", expr)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("schedule %q: value must be a positive integer", expr)
	}
	units := map[string]time.Duration{
		"minute": time.Minute, "minutes": time.Minute,
		"hour": time.Hour, "hours": time.Hour,
		"day": 24 * time.Hour, "days": 24 * time.Hour,
	}
	unit, ok := units[fields[1]]
	if !ok {
		return nil, fmt.Errorf("schedule %q: unit must be minute(s), hour(s) or day(s)", expr)
	}
	// EventBridge refuses "rate(1 minutes)" and "rate(5 minute)".
	if plural := strings.HasSuffix(fields[1], "s"); plural != (n > 1) {
		return nil, fmt.Errorf("schedule %q: use the singular unit for 1 and the plural otherwise", expr)
	}
	return &rateSchedule{expr: expr, anchor: anchor, interval: time.Duration(n) * unit}, nil
}

func (r *rateSchedule) String() string { return r.expr }

func (r *rateSchedule) next(t time.Time) (time.Time, bool) {
	if t.Before(r.anchor) {
		return r.anchor.Add(r.interval), true
	}
	k := t.Sub(r.anchor)/r.interval + 1
	return r.anchor.Add(k * r.interval), true
}

// cronField is the set of values one cron field allows.
type cronField struct {
	any  bool // * or ?: every value
	vals map[int]bool
}

func (f cronField) has(v int) bool { return f.any || f.vals[v] }

// cronSchedule is an AWS cron expression.
type cronSchedule struct {
	expr                                string
	minute, hour, dom, month, dow, year cronField
	domAny, dowAny                      bool // the field is "?"
}

var (
	monthNames = map[string]int{
		"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
		"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
	}
	// AWS numbers weekdays 1-7 from Sunday.
	dayNames = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
)

func parseCron(expr string) (*cronSchedule, error) {
	body := strings.TrimSuffix(strings.TrimPrefix(expr, "cron("), ")")
	f := strings.Fields(body)
	if len(f) != 6 {
		return nil, fmt.Errorf("schedule %q: AWS cron needs 6 fields (minutes hours day-of-month month day-of-week year), got %d", expr, len(f))
	}
	c := &cronSchedule{expr: expr}
	specs := []struct {
		name     string
		dst      *cronField
		min, max int
		names    map[string]int
		question bool
	}{
		{"minutes", &c.minute, 0, 59, nil, false},
		{"hours", &c.hour, 0, 23, nil, false},
		{"day-of-month", &c.dom, 1, 31, nil, true},
		{"month", &c.month, 1, 12, monthNames, false},
		{"day-of-week", &c.dow, 1, 7, dayNames, true},
		{"year", &c.year, 1970, 2199, nil, false},
	}
	for i, s := range specs {
		field, err := parseCronField(f[i], s.min, s.max, s.names, s.question)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %s field: %w", expr, s.name, err)
		}
		*s.dst = field
	}
	c.domAny, c.dowAny = f[2] == "?", f[4] == "?"
	if c.domAny == c.dowAny {
		return nil, fmt.Errorf("schedule %q: exactly one of day-of-month and day-of-week must be ?", expr)
	}
	return c, nil
}

func parseCronField(s string, min, max int, names map[string]int, question bool) (cronField, error) {
	if s == "?" {
		if !question {
			return cronField{}, errors.New("? is allowed only in day-of-month and day-of-week")
		}
		return cronField{any: true}, nil
	}
	if s == "*" {
		return cronField{any: true}, nil
	}
	if strings.ContainsAny(s, "LW#") && !lettersAreNames(s, names) {
		return cronField{}, fmt.Errorf("%q: L, W and # are not supported by the local gateway", s)
	}
	field := cronField{vals: map[int]bool{}}
	for _, part := range strings.Split(s, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return cronField{}, fmt.Errorf("%q: bad step %q", s, stepStr)
			}
			step = n
		}
		var lo, hi int
		switch {
		case rng == "*":
			lo, hi = min, max
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, min, max, names); err != nil {
				return cronField{}, err
			}
			if hi, err = cronValue(b, min, max, names); err != nil {
				return cronField{}, err
			}
		default:
			v, err := cronValue(rng, min, max, names)
			if err != nil {
				return cronField{}, err
			}
			lo, hi = v, v
			if hasStep { // "a/n" runs from a to the end of the range
				hi = max
			}
		}
		// A range may wrap around (FRI-MON, 22-2).
		span := hi - lo
		if span < 0 {
			span += max - min + 1
		}
		for i := 0; i <= span; i += step {
			v := lo + i
			if v > max {
				v -= max - min + 1
			}
			field.vals[v] = true
		}
	}
	return field, nil
}

// lettersAreNames reports whether every L, W and # in s belongs to a month or day name
// (JUL, WED), not to the special day-of-month and day-of-week characters.
func lettersAreNames(s string, names map[string]int) bool {
	up := strings.ToUpper(s)
	for n := range names {
		up = strings.ReplaceAll(up, n, "")
	}
	return !strings.ContainsAny(up, "LW#")
}

func cronValue(s string, min, max int, names map[string]int) (int, error) {
	if v, ok := names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number or a name", s)
	}
	if v < min || v > max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, min, max)
	}
	return v, nil
}

func (c *cronSchedule) String() string { return c.expr }

func (c *cronSchedule) dayMatches(t time.Time) bool {
	if c.domAny {
		return c.dow.has(int(t.Weekday()) + 1)
	}
	return c.dom.has(t.Day())
}

func (c *cronSchedule) next(after time.Time) (time.Time, bool) {
	t := after.UTC().Truncate(time.Minute).Add(time.Minute)
	for t.Year() <= 2199 {
		switch {
		case !c.year.has(t.Year()):
			t = time.Date(t.Year()+1, 1, 1, 0, 0, 0, 0, time.UTC)
		case !c.month.has(int(t.Month())):
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case !c.hour.has(t.Hour()):
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
		case !c.minute.has(t.Minute()):
			t = t.Add(time.Minute)
		default:
			return t, true
		}
	}
	return time.Time{}, false
}
