package main

import (
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	const anchor = "2024-01-01T00:00:30Z"
	tests := []struct {
		expr  string
		after string
		want  []string // successive firing times
	}{
		{"rate(1 minute)", "2024-01-01T00:00:30Z", []string{"2024-01-01T00:01:30Z", "2024-01-01T00:02:30Z"}},
		{"rate(5 minutes)", "2024-01-01T00:07:00Z", []string{"2024-01-01T00:10:30Z", "2024-01-01T00:15:30Z"}},
		{"rate(1 hour)", "2023-12-31T00:00:00Z", []string{"2024-01-01T01:00:30Z", "2024-01-01T02:00:30Z"}},
		{"rate(2 days)", "2024-01-01T00:00:31Z", []string{"2024-01-03T00:00:30Z"}},
		{"cron(0/5 * * * ? *)", "2024-01-01T00:07:10Z", []string{"2024-01-01T00:10:00Z", "2024-01-01T00:15:00Z"}},
		{"cron(*/15 * * * ? *)", "2024-01-01T00:45:00Z", []string{"2024-01-01T01:00:00Z", "2024-01-01T01:15:00Z"}},
		{"cron(0 3 * * ? *)", "2024-01-01T03:00:00Z", []string{"2024-01-02T03:00:00Z", "2024-01-03T03:00:00Z"}},
		{"cron(0 * * * ? *)", "2024-01-01T03:59:59Z", []string{"2024-01-01T04:00:00Z", "2024-01-01T05:00:00Z"}},
		{"cron(15 10 ? * MON-FRI *)", "2024-01-05T11:00:00Z", []string{"2024-01-08T10:15:00Z", "2024-01-09T10:15:00Z"}}, // Fri -> Mon
		{"cron(0 0 ? * 1 *)", "2024-01-01T00:00:00Z", []string{"2024-01-07T00:00:00Z"}},                                 // 1 = Sunday
		{"cron(0 0 ? * SAT,SUN *)", "2024-01-01T00:00:00Z", []string{"2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z"}},
		{"cron(0 0 ? * FRI-MON *)", "2024-01-03T00:00:00Z", []string{"2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z", "2024-01-08T00:00:00Z", "2024-01-12T00:00:00Z"}},
		{"cron(30 1 1,15 * ? *)", "2024-01-02T00:00:00Z", []string{"2024-01-15T01:30:00Z", "2024-02-01T01:30:00Z"}},
		{"cron(0 0 31 * ? *)", "2024-01-31T00:00:00Z", []string{"2024-03-31T00:00:00Z"}},
		{"cron(0 12 1 JAN-MAR/2 ? *)", "2024-01-01T12:00:00Z", []string{"2024-03-01T12:00:00Z", "2025-01-01T12:00:00Z"}},
		{"cron(0 0 29 2 ? 2025-2028)", "2024-06-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"cron(10-12 22-1/2 * * ? *)", "2024-01-01T00:00:00Z", []string{"2024-01-01T00:10:00Z", "2024-01-01T00:11:00Z", "2024-01-01T00:12:00Z", "2024-01-01T22:10:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr+" after "+tt.after, func(t *testing.T) {
			t.Parallel()
			s, err := parseSchedule(tt.expr, mustTime(t, anchor))
			if err != nil {
				t.Fatalf("parseSchedule: %v", err)
			}
			if s.String() != tt.expr {
				t.Errorf("String() = %q", s.String())
			}
			at := mustTime(t, tt.after)
			for i, w := range tt.want {
				got, ok := s.next(at)
				if !ok {
					t.Fatalf("next #%d: none, want %s", i, w)
				}
				if want := mustTime(t, w); !got.Equal(want) {
					t.Fatalf("next #%d after %s = %s, want %s", i, at.Format(time.RFC3339), got.Format(time.RFC3339), w)
				}
				at = got
			}
		})
	}
}

func TestScheduleEnds(t *testing.T) {
	t.Parallel()
	s, err := parseSchedule("cron(0 0 1 1 ? 2020)", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.next(mustTime(t, "2024-01-01T00:00:00Z")); ok {
		t.Errorf("next = %s, want none", got)
	}
}

func TestParseScheduleErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ expr, want string }{
		{"every 5 minutes", "want rate(...) or cron(...)"},
		{"rate(5)", "rate(<value> <unit>)"},
		{"rate(0 minutes)", "positive integer"},
		{"rate(five minutes)", "positive integer"},
		{"rate(5 seconds)", "unit must be"},
		{"rate(1 minutes)", "singular"},
		{"rate(5 minute)", "singular"},
		{"cron(0 3 * * *)", "6 fields"},
		{"cron(0 3 * * * *)", "exactly one of day-of-month and day-of-week"},
		{"cron(0 3 ? * ? *)", "exactly one of day-of-month and day-of-week"},
		{"cron(60 3 * * ? *)", "minutes field"},
		{"cron(0 24 * * ? *)", "hours field"},
		{"cron(0 3 0 * ? *)", "day-of-month field"},
		{"cron(0 3 * 13 ? *)", "month field"},
		{"cron(0 3 * FOO ? *)", "not a number or a name"},
		{"cron(0 3 ? * 8 *)", "day-of-week field"},
		{"cron(? 3 * * ? *)", "? is allowed only"},
		{"cron(0 3 L * ? *)", "not supported"},
		{"cron(0 3 15W * ? *)", "not supported"},
		{"cron(0 3 ? * 6L *)", "not supported"},
		{"cron(0 3 ? * 3#2 *)", "not supported"},
		{"cron(*/0 3 * * ? *)", "bad step"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			_, err := parseSchedule(tt.expr, time.Time{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCronMonthNamesWithLetters(t *testing.T) {
	t.Parallel()
	// JUL contains L and WED contains W: names, not the special characters.
	for _, expr := range []string{"cron(0 0 1 JUL ? *)", "cron(0 0 ? * WED *)"} {
		if _, err := parseSchedule(expr, time.Time{}); err != nil {
			t.Errorf("parseSchedule(%q): %v", expr, err)
		}
	}
}
