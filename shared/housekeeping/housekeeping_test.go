package housekeeping_test

import (
	"context"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/housekeeping"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// Each table loses exactly its rows past what its rule keeps; rows just
// inside it, and every row of the tables it does not name, stay.
func TestPruneDeletesOnlyWhatServedItsPurpose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(ctx, db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	insert := map[string]string{
		"rate_limit_counters": "INSERT INTO rate_limit_counters (bucket_key, window_start, `count`, expires_at) VALUES (?, ?, 1, ?)",
		"sms_codes":           "INSERT INTO sms_codes (phone, purpose, code_hash, expires_at, created_at) VALUES (?, 'login', REPEAT('a', 64), ?, ?)",
		"refresh_tokens":      "INSERT INTO refresh_tokens (token_hash, family_id, subject_type, subject_id, expires_at, issued_at) VALUES (SHA2(?, 256), 'f', 'user', 1, ?, ?)",
		"idempotency_keys":    "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash, expires_at, created_at) VALUES ('s', ?, REPEAT('a', 64), ?, ?)",
		"login_lockouts":      "INSERT INTO login_lockouts (subject_type, identifier, updated_at, first_failed_login_at) VALUES ('user', ?, ?, ?)",
	}
	for _, r := range housekeeping.Rules {
		q, ok := insert[r.Table]
		if !ok {
			t.Fatalf("no fixture for %s", r.Table)
		}
		for i, at := range []time.Time{now.Add(-r.Keep - 2*time.Hour), now.Add(-r.Keep - time.Second), now.Add(-r.Keep + time.Minute), now} {
			if _, err := db.Exec(q, r.Table+string(rune('a'+i)), at, at); err != nil {
				t.Fatalf("%s: %v", r.Table, err)
			}
		}
	}
	deleted, err := housekeeping.Prune(ctx, db, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range housekeeping.Rules {
		var left int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + r.Table).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if deleted[r.Table] != 2 || left != 2 {
			t.Errorf("%s: deleted %d, %d left; want the 2 past %s gone and the 2 inside it kept", r.Table, deleted[r.Table], left, r.Keep)
		}
	}
	again, err := housekeeping.Prune(ctx, db, now)
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range again {
		if n != 0 {
			t.Errorf("a second run deleted %d more from %s", n, table)
		}
	}
}
