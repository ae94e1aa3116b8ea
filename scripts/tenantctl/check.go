package main

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/unitenant/unitenant/shared/provisioning"
)

// checkReport is what check prints.
type checkReport struct {
	Checked int           `json:"checked"`
	Differ  int           `json:"differ"`
	Tenants []tenantCheck `json:"tenants"`
}

// tenantCheck is one tenant database compared with its cluster's template.
type tenantCheck struct {
	Tenant      string `json:"tenant"`
	Database    string `json:"database"`
	Cluster     string `json:"cluster"`
	clusterID   int64
	OK          bool              `json:"ok"`
	Differences []checkDifference `json:"differences,omitempty"`
}

// checkDifference is a difference with its one-line reading.
type checkDifference struct {
	provisioning.Difference
	Message string `json:"message"`
}

// check compares every tenant database (or tenant code's) with the template
// on its cluster through information_schema and prints the differences; it
// fails when any database differs. The seed's check-tenant-databases.
func (c *cli) check(ctx context.Context, args []string) error {
	if len(args) > 1 {
		return usageError(fmt.Sprintf("check: unexpected argument %q", args[1]))
	}
	query := `SELECT t.tenant_code, d.database_name, d.cluster_id, c.name
		FROM tenant_databases d JOIN tenants t ON t.id = d.tenant_id JOIN db_clusters c ON c.id = d.cluster_id
		WHERE d.status <> 'dropped'`
	var qargs []any
	if len(args) == 1 {
		query += " AND t.tenant_code = ?"
		qargs = append(qargs, args[0])
	}
	rows, err := c.db.QueryContext(ctx, query+" ORDER BY d.cluster_id, t.tenant_code", qargs...)
	if err != nil {
		return fmt.Errorf("list tenant databases: %w", err)
	}
	targets := []tenantCheck{}
	for rows.Next() {
		var tc tenantCheck
		if err := rows.Scan(&tc.Tenant, &tc.Database, &tc.clusterID, &tc.Cluster); err != nil {
			rows.Close()
			return fmt.Errorf("list tenant databases: %w", err)
		}
		targets = append(targets, tc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list tenant databases: %w", err)
	}
	if len(args) == 1 && len(targets) == 0 {
		return fmt.Errorf("tenant %q has no database to check", args[0])
	}
	report := checkReport{Tenants: targets}
	// The rows come cluster by cluster: check each run of them together.
	for start := 0; start < len(targets); {
		end := start + 1
		for end < len(targets) && targets[end].clusterID == targets[start].clusterID {
			end++
		}
		if err := c.checkCluster(ctx, targets[start:end]); err != nil {
			return err
		}
		start = end
	}
	for _, tc := range targets {
		report.Checked++
		if !tc.OK {
			report.Differ++
		}
	}
	if err := c.print(report); err != nil {
		return err
	}
	if report.Differ > 0 {
		return fmt.Errorf("%d of %d tenant databases differ from the template", report.Differ, report.Checked)
	}
	return nil
}

// checkCluster compares tenant databases of one cluster with the template
// there, read once.
func (c *cli) checkCluster(ctx context.Context, tenants []tenantCheck) error {
	box, err := c.secretBox()
	if err != nil {
		return err
	}
	server, _, err := provisioning.OpenCluster(ctx, c.db, box, tenants[0].clusterID, "")
	if err != nil {
		return err
	}
	defer server.Close()
	want, err := provisioning.ReadSchema(ctx, server, c.template)
	if err != nil {
		return err
	}
	if !want.Exists {
		return fmt.Errorf("db cluster %s has no template %s (run provision-cron, or tenantctl migrate template for the default cluster)",
			tenants[0].Cluster, c.template)
	}
	for i := range tenants {
		if err := compareTenant(ctx, server, want, &tenants[i]); err != nil {
			return err
		}
	}
	return nil
}

func compareTenant(ctx context.Context, server *sql.DB, want *provisioning.Schema, tc *tenantCheck) error {
	got, err := provisioning.ReadSchema(ctx, server, tc.Database)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", tc.Tenant, err)
	}
	for _, d := range want.Compare(got) {
		tc.Differences = append(tc.Differences, checkDifference{Difference: d, Message: d.String()})
	}
	tc.OK = len(tc.Differences) == 0
	return nil
}
