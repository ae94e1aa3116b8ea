package lifecycle_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Every kind of value survives an archive and a restore byte for byte,
// across many INSERT batches, and generated columns are computed again.
func TestArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	src := e.tenants.Prefix + "src"
	server := e.tenants.Server
	if err := sqldb.CreateDatabase(ctx, server, src); err != nil {
		t.Fatal(err)
	}
	q := "`" + src + "`"
	for _, stmt := range []string{
		`CREATE TABLE ` + q + `.kinds (
			id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
			s VARCHAR(500) NULL, txt TEXT NULL, b BLOB NULL, vb VARBINARY(16) NULL, bits BIT(5) NULL,
			j JSON NULL, d DATE NULL, dt DATETIME(3) NULL, ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME NULL, y YEAR NULL,
			dec10 DECIMAL(20,6) NULL, f DOUBLE NULL, big BIGINT UNSIGNED NULL, e ENUM('a','b''c') NULL, st SET('x','y') NULL,
			upper_s VARCHAR(500) AS (UPPER(s)) VIRTUAL
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='semi;colon ''quoted'' -- not a comment'`,
		`CREATE TABLE ` + q + `.empty_one (id INT PRIMARY KEY)`,
		`CREATE TABLE ` + q + `.child (id INT PRIMARY KEY, kind_id INT UNSIGNED NOT NULL, FOREIGN KEY (kind_id) REFERENCES kinds (id))`,
	} {
		if _, err := server.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	conn, err := server.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Row 0 (id 0, kept by NO_AUTO_VALUE_ON_ZERO) holds the awkward values;
	// the others make the table span several INSERT batches.
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'"); err != nil {
		t.Fatal(err)
	}
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO `+q+`.kinds (id, s, txt, b, vb, bits, j, d, dt, ts, tm, y, dec10, f, big, e, st)
		VALUES (0, ?, ?, ?, ?, b'10101', '{"k": "v\\"q", "n": [1, 2.5]}', '0000-00-00', '2024-02-29 23:59:59.123', '2038-01-19 03:14:07.999999',
		'-838:59:59', 1901, -12345678901234.123456, 1.7976931348623157e308, 18446744073709551615, 'b''c', 'x,y')`,
		"it's \"q\" \\ \n\r\t\x00\x1a; -- 中文😀", strings.Repeat("ü", 1000), allBytes, []byte{0, '\'', '\\', 0xff}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	for i := 1; i <= 3000; i++ {
		if _, err := server.ExecContext(ctx, "INSERT INTO "+q+".kinds (s, f) VALUES (?, ?)", fmt.Sprintf("%d-%s", i, strings.Repeat("x", 300)), float64(i)/3); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.ExecContext(ctx, "INSERT INTO "+q+".child VALUES (1, 0), (2, 3000)"); err != nil {
		t.Fatal(err)
	}
	wantCounts, wantSums := tableState(t, server, src)

	raw, err := lifecycle.OpenServer(ctx, e.sys.DB, e.sys.Box, clusterID(t, e.sys.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	key := lifecycle.ArchiveKey("k001", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	if key != "archives/k001/20240102T030405Z.sql.gz" {
		t.Fatalf("key %q", key)
	}
	a, err := lifecycle.WriteArchive(ctx, raw, e.store.Store, key, src)
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(a.RowCounts, wantCounts) {
		t.Fatalf("archived counts %v, want %v", a.RowCounts, wantCounts)
	}
	if sql := archiveText(t, e, key); strings.Count(sql, "INSERT INTO `kinds`") < 2 {
		t.Fatalf("kinds fits in one INSERT: the test does not cover batching")
	}
	into := e.tenants.Prefix + "dst"
	got, err := lifecycle.RestoreArchive(ctx, raw, e.store.Store, key, into)
	if err != nil {
		t.Fatal(err)
	}
	gotCounts, gotSums := tableState(t, server, into)
	if !mapsEqual(got, wantCounts) || !mapsEqual(gotCounts, wantCounts) || !mapsEqual(gotSums, wantSums) {
		t.Fatalf("restored %v / %v %v, want %v %v", got, gotCounts, gotSums, wantCounts, wantSums)
	}
	var upper string
	if err := server.QueryRow("SELECT upper_s FROM `" + into + "`.kinds WHERE id = 1").Scan(&upper); err != nil || !strings.HasPrefix(upper, "1-XXX") {
		t.Fatalf("generated column %q (%v)", upper, err)
	}

	t.Run("IntoAnExistingDatabase", func(t *testing.T) {
		if _, err := lifecycle.RestoreArchive(ctx, raw, e.store.Store, key, src); err == nil || !strings.Contains(err.Error(), "exists") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("NotAnArchive", func(t *testing.T) {
		putGzip(t, e, "archives/k001/bad.sql.gz", "CREATE TABLE `a` (id INT);\n")
		if _, err := lifecycle.RestoreArchive(ctx, raw, e.store.Store, "archives/k001/bad.sql.gz", e.tenants.Prefix+"bad"); err == nil {
			t.Fatal("restored a file that is not an archive")
		}
		if e.databaseExists(e.tenants.Prefix + "bad") {
			t.Fatal("the failed restore left its database")
		}
	})
	t.Run("ForeignStatement", func(t *testing.T) {
		putGzip(t, e, "archives/k001/evil.sql.gz", "-- unitenant archive v1\nCREATE TABLE `a` (id INT);\nINSERT INTO `"+src+"`.`kinds` (id) VALUES (99999);\n")
		_, err := lifecycle.RestoreArchive(ctx, raw, e.store.Store, "archives/k001/evil.sql.gz", e.tenants.Prefix+"evil")
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("err = %v, want the statement refused", err)
		}
		var n int
		_ = server.QueryRow("SELECT COUNT(*) FROM " + q + ".kinds WHERE id = 99999").Scan(&n)
		if n != 0 || e.databaseExists(e.tenants.Prefix+"evil") {
			t.Fatalf("the refused archive changed something: %d rows, err %v", n, err)
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		text := archiveText(t, e, key)
		putGzip(t, e, "archives/k001/cut.sql.gz", text[:len(text)/2])
		if _, err := lifecycle.RestoreArchive(ctx, raw, e.store.Store, "archives/k001/cut.sql.gz", e.tenants.Prefix+"cut"); err == nil {
			t.Fatal("restored half an archive")
		}
	})
}

// archiveText returns the SQL of the archive under key.
func archiveText(t *testing.T, e *purgeEnv, key string) string {
	t.Helper()
	body, _, err := e.store.Store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	zr, err := gzip.NewReader(body)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// putGzip stores text gzip-compressed under key.
func putGzip(t *testing.T, e *purgeEnv, key, text string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(text))
	_ = zw.Close()
	if err := e.store.Store.Put(context.Background(), key, &b, int64(b.Len()), ""); err != nil {
		t.Fatal(err)
	}
}

// racingStore is the local store whose Get first runs during: something
// else acting at that moment, between RestoreArchive's check that its
// database is new and the creation of that database.
type racingStore struct {
	objectstore.Store
	during func()
}

func (s racingStore) Get(ctx context.Context, key string) (io.ReadCloser, objectstore.Info, error) {
	s.during()
	return s.Store.Get(ctx, key)
}

// A database created by someone else after RestoreArchive checked that its
// target was new (another restore into the same name, a provisioning) is
// neither loaded into nor, when the load then fails, dropped.
func TestRestoreArchiveLeavesADatabaseItDidNotCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	server := e.tenants.Server
	src := e.tenants.Prefix + "src"
	if err := sqldb.CreateDatabase(ctx, server, src); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Exec("CREATE TABLE `" + src + "`.notes (id INT PRIMARY KEY, body TEXT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Exec("INSERT INTO `" + src + "`.notes VALUES (1, 'archived')"); err != nil {
		t.Fatal(err)
	}
	raw, err := lifecycle.OpenServer(ctx, e.sys.DB, e.sys.Box, clusterID(t, e.sys.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	key := lifecycle.ArchiveKey("k001", e.now)
	if _, err := lifecycle.WriteArchive(ctx, raw, e.store.Store, key, src); err != nil {
		t.Fatal(err)
	}

	live := e.tenants.Prefix + "live"
	store := racingStore{Store: e.store.Store, during: func() {
		for _, stmt := range []string{
			"CREATE DATABASE `" + live + "`",
			"CREATE TABLE `" + live + "`.notes (id INT PRIMARY KEY, body TEXT)",
			"INSERT INTO `" + live + "`.notes VALUES (7, 'live data')",
		} {
			if _, err := server.Exec(stmt); err != nil {
				t.Error(err)
			}
		}
	}}
	if _, err := lifecycle.RestoreArchive(ctx, raw, store, key, live); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("err = %v, want the existing database refused", err)
	}
	var body string
	if err := server.QueryRow("SELECT body FROM `" + live + "`.notes WHERE id = 7").Scan(&body); err != nil || body != "live data" {
		t.Fatalf("the database created meanwhile lost its data: %q, %v", body, err)
	}
	var n int
	if err := server.QueryRow("SELECT COUNT(*) FROM `" + live + "`.notes").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the restore wrote into a database it did not create: %d rows, %v", n, err)
	}
}
