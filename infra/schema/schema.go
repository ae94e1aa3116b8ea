// Package schema embeds unitenant's versioned SQL: System, the control-plane
// database, and Tenant, the template every tenant database is made from.
// Files are named NNNN_name.sql and applied in order by shared/migration; an
// applied file is never edited: a change is a new file.
package schema

import (
	"embed"
	"io/fs"

	"github.com/unitenant/unitenant/shared/migration"
)

//go:embed system/*.sql tenant/*.sql
var files embed.FS

// System returns the control-plane database's migrations.
func System() ([]migration.Migration, error) { return load("system") }

// Tenant returns the tenant template's migrations.
func Tenant() ([]migration.Migration, error) { return load("tenant") }

func load(dir string) ([]migration.Migration, error) {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		return nil, err
	}
	return migration.Load(sub)
}
