package provisioning_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

func TestDifferenceString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    provisioning.Difference
		want string
	}{
		{provisioning.Difference{Kind: "column", Table: "classes", Object: "name", Want: "varchar(64) NOT NULL"}, "missing column classes.name"},
		{provisioning.Difference{Kind: "index", Table: "classes", Object: "idx_x", Got: "KEY (name)"}, "extra index classes.idx_x"},
		{provisioning.Difference{Kind: "table", Table: "classes", Want: "ENGINE=InnoDB"}, "missing table classes"},
		{provisioning.Difference{Kind: "database", Object: "tenant_k001", Want: "like t"}, "missing database tenant_k001"},
		{provisioning.Difference{Kind: "column", Table: "classes", Object: "capacity", Want: "int(11)", Got: "bigint(20)"},
			"column classes.capacity differs: want int(11), got bigint(20)"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// CheckDatabase names every kind of change made by hand to a clone.
func TestCheckDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	server, tmpl := materializedTemplate(t, 0)
	target := sqldbtest.Name(t)
	dropLater(t, server, target)
	if err := provisioning.CloneDatabase(ctx, server, tmpl, target, 0); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"ALTER TABLE `%s`.classes DROP COLUMN classroom",
		"ALTER TABLE `%s`.classes MODIFY capacity INT NOT NULL DEFAULT 30",
		"ALTER TABLE `%s`.classes ADD INDEX idx_by_hand (school_year, name)",
		"ALTER TABLE `%s`.classes DROP FOREIGN KEY fk_classes_kindergarten_id",
		"ALTER TABLE `%s`.classes MODIFY sort_order INT NOT NULL DEFAULT 0 FIRST",
		"DROP TABLE `%s`.role_permissions",
		"CREATE TABLE `%s`.by_hand (id INT PRIMARY KEY)",
	} {
		if _, err := server.ExecContext(ctx, fmt.Sprintf(q, target)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	diffs, err := provisioning.CheckDatabase(ctx, server, tmpl, target)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range diffs {
		got = append(got, d.String())
	}
	want := []string{
		"extra table by_hand",
		"missing column classes.classroom",
		"column classes.capacity differs: want smallint(5) unsigned NOT NULL DEFAULT 30, got int(11) NOT NULL DEFAULT 30",
		"column order classes differs: want id, kindergarten_id, name, grade, school_year, capacity, current_count, description, sort_order, status, created_at, updated_at, got sort_order, id, kindergarten_id, name, grade, school_year, capacity, current_count, description, status, created_at, updated_at",
		"extra index classes.idx_by_hand",
		"missing foreign key classes.fk_classes_kindergarten_id",
		"missing table role_permissions",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("differences lack %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d differences, want %d:\n%v", len(got), len(want), got)
	}

	t.Run("MissingDatabase", func(t *testing.T) {
		name := sqldbtest.Name(t)
		diffs, err := provisioning.CheckDatabase(ctx, server, tmpl, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) != 1 || diffs[0].String() != "missing database "+name {
			t.Fatalf("diffs = %v", diffs)
		}
	})
	t.Run("ErrMissingTemplate", func(t *testing.T) {
		if _, err := provisioning.CheckDatabase(ctx, server, sqldbtest.Name(t), tmpl); err == nil {
			t.Fatal("want an error")
		}
	})
}
