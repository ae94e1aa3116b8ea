package main

import (
	"context"
	"testing"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

func TestJobMigratesSystemAndTemplate(t *testing.T) {
	t.Parallel()
	db, dsn := sqldbtest.NewDatabase(t)
	tmplName := sqldbtest.Name(t)
	tmpl, _ := sqldbtest.CreateDatabase(t, tmplName)
	j := &job{db: db, dsn: dsn, template: tmplName, log: logging.Discard()}

	out, err := j.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := out.(result)
	sys, _ := schema.System()
	ten, _ := schema.Tenant()
	if res.System.To != migration.Latest(sys) || res.Template.To != migration.Latest(ten) {
		t.Fatalf("result %+v, want system %d template %d", res, migration.Latest(sys), migration.Latest(ten))
	}
	if v, err := migration.Version(context.Background(), tmpl); err != nil || v != migration.Latest(ten) {
		t.Fatalf("template version %d (%v)", v, err)
	}
	// The next run finds nothing to do.
	out, err = j.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res := out.(result); len(res.System.Applied)+len(res.Template.Applied) != 0 {
		t.Fatalf("second run applied %+v", res)
	}
}
