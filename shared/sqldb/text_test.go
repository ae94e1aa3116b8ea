package sqldb_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

func TestTextFitsTheColumn(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"curl/8", 500, "curl/8"},
		{"curl/8\xff\xfe", 500, "curl/8\uFFFD"}, // ToValidUTF8 replaces a run of bad bytes once
		{"abcdef", 3, "abc"},
		{"学校管理系统", 4, "学校管理"}, // characters, not bytes
		{"ab学", 3, "ab学"},
		{"a\xffb", 2, "a\uFFFD"},
	} {
		if got := sqldb.Text(c.in, c.n); got != c.want {
			t.Errorf("Text(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestTextIsWhatTheServerStores: a value made by Text is stored as it is
// in a utf8mb4 VARCHAR(n) under the strict mode every pool runs with,
// where the raw value is refused.
func TestTextIsWhatTheServerStores(t *testing.T) {
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := db.Exec("CREATE TABLE agents (ua VARCHAR(10) CHARACTER SET utf8mb4 NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"curl/8\xff\xfe", strings.Repeat("学", 11), strings.Repeat("x", 11) + "\xc3"} {
		if _, err := db.Exec("INSERT INTO agents (ua) VALUES (?)", raw); err == nil {
			t.Fatalf("the server took %q as it is: the test proves nothing", raw)
		}
		v := sqldb.Text(raw, 10)
		if _, err := db.Exec("INSERT INTO agents (ua) VALUES (?)", v); err != nil {
			t.Fatalf("Text(%q) = %q refused: %v", raw, v, err)
		}
		var got string
		if err := db.QueryRow("SELECT ua FROM agents WHERE ua = ?", v).Scan(&got); err != nil || got != v || !utf8.ValidString(got) {
			t.Fatalf("stored %q (%v), want %q", got, err, v)
		}
	}
}
