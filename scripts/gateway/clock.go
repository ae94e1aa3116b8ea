package main

import (
	"context"
	"time"
)

// clock is the scheduler's time. Scaled, it lets tests see rate(1 minute) fire in a
// fraction of a second.
type clock struct {
	origin    time.Time // the clock's time at realStart
	realStart time.Time
	scale     float64 // clock seconds per real second
}

func newScaledClock(now time.Time, scale float64) clock {
	if scale <= 0 {
		scale = 1
	}
	return clock{origin: now, realStart: now, scale: scale}
}

// Now returns the clock's current time.
func (c clock) Now() time.Time {
	elapsed := time.Since(c.realStart)
	return c.origin.Add(time.Duration(float64(elapsed) * c.scale))
}

// sleep waits for d of clock time, and reports false if ctx ended first.
func (c clock) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(time.Duration(float64(d) / c.scale))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
