package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/objectstore"
)

// restoredArchive is what restore-archive prints.
type restoredArchive struct {
	Archive   string           `json:"archive"`
	Tenant    string           `json:"tenantCode"`
	Database  string           `json:"database"`
	Cluster   string           `json:"cluster"`
	RowCounts map[string]int64 `json:"rowCounts"`
}

// restoreArchive brings a purged tenant's archive back into a new database:
// restore-archive <archive-key> --into <database> [--cluster default]. The
// archive must be recorded in tenant_archives, its checksum must match, and
// the restored row counts must equal the recorded ones.
func (c *cli) restoreArchive(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("restore-archive: want <archive-key> --into <database> [--cluster NAME]")
	}
	key := args[0]
	var into, cluster string
	err := c.flags("restore-archive", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&into, "into", "", "the new database")
		fs.StringVar(&cluster, "cluster", DefaultCluster, "the cluster to restore on")
	}, "into")
	if err != nil {
		return err
	}
	rec, err := lifecycle.FindArchive(ctx, c.db, key)
	if err != nil {
		return err
	}
	if rec.Status != "completed" {
		return fmt.Errorf("archive %s is %s, not completed", key, rec.Status)
	}
	store, err := objectstore.Load(c.env, c.base.Env == "development")
	if err != nil {
		return err
	}
	if err := checkArchiveSum(ctx, store.Store, rec); err != nil {
		return err
	}
	id, err := c.clusterID(ctx, cluster)
	if err != nil {
		return err
	}
	box, err := c.secretBox()
	if err != nil {
		return err
	}
	server, err := lifecycle.OpenServer(ctx, c.db, box, id)
	if err != nil {
		return err
	}
	defer server.Close()
	counts, err := lifecycle.RestoreArchive(ctx, server, store.Store, key, into)
	if err != nil {
		return err
	}
	if !maps.Equal(counts, rec.RowCounts) {
		return fmt.Errorf("restored %s into %s, but its row counts %v differ from the recorded %v", key, into, counts, rec.RowCounts)
	}
	return c.print(restoredArchive{Archive: key, Tenant: rec.TenantCode, Database: into, Cluster: cluster, RowCounts: counts})
}

// checkArchiveSum reads the archive object and compares its SHA-256 with
// the recorded one, before anything is created from it.
func checkArchiveSum(ctx context.Context, store objectstore.Store, rec *lifecycle.ArchiveRecord) error {
	body, _, err := store.Get(ctx, rec.Key)
	if err != nil {
		return fmt.Errorf("archive %s: %w", rec.Key, err)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, body); err != nil {
		return fmt.Errorf("read archive %s: %w", rec.Key, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != rec.Checksum {
		return fmt.Errorf("archive %s is damaged: SHA-256 %s, recorded %s", rec.Key, sum, rec.Checksum)
	}
	return nil
}
