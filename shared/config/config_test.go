package config_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
)

func TestDefaultsWorkOnADeveloperMachine(t *testing.T) {
	t.Parallel()
	e := config.FromMap(nil)
	b := config.LoadBase(e)
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	if b.DB.DSN != config.DefaultDSN || b.Env != "development" || b.LogLevel != slog.LevelInfo || b.DB.MaxOpenConns <= 0 {
		t.Fatalf("defaults = %+v", b)
	}
}

func TestEveryBadVariableIsNamed(t *testing.T) {
	t.Parallel()
	e := config.FromMap(map[string]string{
		"APP_ENV":              "staging",
		"LOG_LEVEL":            "loud",
		"MYSQL_MAX_OPEN_CONNS": "many",
		"MYSQL_DIAL_TIMEOUT":   "-3s",
		"MYSQL_DSN":            "admin:hunter2@tcp(db:3306)/",
	})
	config.LoadBase(e)
	err := e.Err()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, name := range []string{"APP_ENV", "LOG_LEVEL", "MYSQL_MAX_OPEN_CONNS", "MYSQL_DIAL_TIMEOUT", "MYSQL_DSN"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the database password: %v", err)
	}
}

func TestTypedGetters(t *testing.T) {
	t.Parallel()
	e := config.FromMap(map[string]string{"N": "7", "D": "90s", "B": "yes", "OUT": "99"})
	if e.Int("N", 1, 0, 10) != 7 || e.Duration("D", time.Second) != 90*time.Second || !e.Bool("B", false) {
		t.Fatal("getters misread valid values")
	}
	if e.Err() != nil {
		t.Fatal(e.Err())
	}
	if got := e.Int("OUT", 5, 0, 10); got != 5 || e.Err() == nil {
		t.Fatalf("out of range: got %d, err %v", got, e.Err())
	}
}

func TestMaskDSN(t *testing.T) {
	t.Parallel()
	got := config.MaskDSN("admin:hunter2@tcp(db:3306)/unitenant")
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "admin:***@") {
		t.Fatalf("MaskDSN = %q", got)
	}
}
