package provisioning

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Abort removes everything the provisioning of code made: its database (and
// siloed user), its objects, its membership rows and the tenant itself. A
// tenant whose provisioning completed is refused: that one is deleted through
// the lifecycle, with its grace period. (A crash during activation leaves the
// tenant active but its provisioning unfinished: that one can be aborted.)
// Abort is idempotent: rerun after a crash it finishes.
func (p *Pipeline) Abort(ctx context.Context, code string) error {
	p.defaults()
	var tenantID int64
	var status string
	var progress sql.NullString
	err := p.Sys.QueryRowContext(ctx, `SELECT t.id, t.status, p.status FROM tenants t
		LEFT JOIN tenant_init_progress p ON p.tenant_id = t.id WHERE t.tenant_code = ?`, code).Scan(&tenantID, &status, &progress)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // nothing left: an earlier abort finished
	}
	if err != nil {
		return fmt.Errorf("abort %s: %w", code, err)
	}
	if !progress.Valid || progress.String == "completed" || (status != "provisioning" && status != "active") {
		return fault.New(fault.Conflict, "invalid_transition",
			"tenant %s is %s and its provisioning is finished; delete it instead", code, status)
	}
	// Take the lease so no runner works on it while it is taken apart.
	now := p.now()
	res, err := p.Sys.ExecContext(ctx, `
		UPDATE tenant_init_progress SET lease_owner = ?, lease_expires_at = ?, status = 'failed', error_message = 'aborted', error_detail = NULL
		WHERE tenant_id = ? AND (lease_owner IS NULL OR lease_expires_at < ? OR lease_owner = ?)`,
		p.Owner, now.Add(p.LeaseTTL), tenantID, now, p.Owner)
	if err != nil {
		return fmt.Errorf("abort %s: lease: %w", code, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var exists int
		_ = p.Sys.QueryRowContext(ctx, "SELECT COUNT(*) FROM tenant_init_progress WHERE tenant_id = ?", tenantID).Scan(&exists)
		if exists > 0 {
			return ErrBusy
		}
	}

	var clusterID sql.NullInt64
	var dbName, dbUser sql.NullString
	err = p.Sys.QueryRowContext(ctx, "SELECT cluster_id, database_name, db_user FROM tenant_databases WHERE tenant_id = ?", tenantID).
		Scan(&clusterID, &dbName, &dbUser)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("abort %s: %w", code, err)
	}
	if !dbName.Valid {
		// A claim or a clone may have happened before the crash that kept it
		// from being recorded: find it by its owner or its name.
		if err := p.Sys.QueryRowContext(ctx, `SELECT cluster_id, database_name FROM warm_pool_databases
			WHERE claimed_by_tenant_id = ? AND status = 'claimed'`, tenantID).
			Scan(&clusterID, &dbName); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("abort %s: %w", code, err)
		}
	}
	if !dbName.Valid {
		var pl placement
		st := &state{outputs: map[string]json.RawMessage{}}
		if err := p.loadOutputs(ctx, tenantID, st); err != nil {
			return err
		}
		if st.output("place", &pl) {
			name, err := DatabaseName(p.Prefix, code)
			if err != nil {
				return err
			}
			clusterID, dbName = sql.NullInt64{Int64: pl.ClusterID, Valid: true}, sql.NullString{String: name, Valid: true}
		}
	}
	if dbName.Valid && clusterID.Valid {
		server, _, err := OpenCluster(ctx, p.Sys, p.Box, clusterID.Int64, "")
		if err != nil {
			return fmt.Errorf("abort %s: %w", code, err)
		}
		defer server.Close()
		if err := sqldb.DropDatabase(ctx, server, dbName.String); err != nil {
			return fmt.Errorf("abort %s: %w", code, err)
		}
		user := siloUserName(dbName.String)
		if _, err := server.ExecContext(ctx, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, p.SiloUserHost)); err != nil {
			return fmt.Errorf("abort %s: drop user: %w", code, err)
		}
		if _, err := p.Sys.ExecContext(ctx, "UPDATE warm_pool_databases SET status = 'discarded' WHERE database_name = ?", dbName.String); err != nil {
			return fmt.Errorf("abort %s: %w", code, err)
		}
	}
	if err := p.abortClones(ctx, tenantID); err != nil {
		return fmt.Errorf("abort %s: %w", code, err)
	}
	if p.Storage != nil {
		// Allocation may have run without being recorded: remove what lives
		// where this code's objects go.
		if err := p.Storage.Remove(ctx, p.Storage.Prefix(code)); err != nil {
			return fmt.Errorf("abort %s: objects: %w", code, err)
		}
	}
	return sqldb.InTx(ctx, p.Sys, func(tx *sql.Tx) error {
		for _, q := range []string{
			"DELETE FROM tenant_databases WHERE tenant_id = ?",
			"DELETE FROM tenant_accounts WHERE tenant_id = ?",
			"DELETE FROM warm_pool_databases WHERE claimed_by_tenant_id = ? AND status = 'discarded'",
			"DELETE FROM tenants WHERE id = ?", // relations, domains, progress, steps, model configs cascade
		} {
			if _, err := tx.ExecContext(ctx, q, tenantID); err != nil {
				return fmt.Errorf("abort %s: %w", code, err)
			}
		}
		p.Log.InfoContext(ctx, "provisioning aborted", "tenant", code)
		return nil
	})
}

func (p *Pipeline) loadOutputs(ctx context.Context, tenantID int64, st *state) error {
	rows, err := p.Sys.QueryContext(ctx, `SELECT step_name, output FROM tenant_init_steps WHERE tenant_id = ? AND output IS NOT NULL`, tenantID)
	if err != nil {
		return fmt.Errorf("read step outputs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var out []byte
		if err := rows.Scan(&name, &out); err != nil {
			return err
		}
		st.outputs[name] = out
	}
	return rows.Err()
}

// StepView is one step as the progress endpoint shows it.
type StepView struct {
	Name        string     `json:"name"`
	Order       int        `json:"order"`
	Status      string     `json:"status"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
	Error       *string    `json:"error"`
	ErrorDetail *string    `json:"errorDetail,omitempty"` // admins only (see Redact)
}

// ProgressView is the tenant's provisioning progress.
type ProgressView struct {
	TenantCode  string     `json:"tenantCode"`
	Status      string     `json:"status"`
	CurrentStep int        `json:"currentStep"`
	TotalSteps  int        `json:"totalSteps"`
	Percent     int        `json:"percent"`
	Error       *string    `json:"error"`
	ErrorDetail *string    `json:"errorDetail,omitempty"` // admins only (see Redact)
	Steps       []StepView `json:"steps"`
	creatorUser int64
	tenantID    int64
}

// CreatorUserID is the global user who asked for the tenant; 0 when an admin
// did (admin and global user ids are numbered apart and never compared).
func (v *ProgressView) CreatorUserID() int64 { return v.creatorUser }

// TenantID is the tenant's id.
func (v *ProgressView) TenantID() int64 { return v.tenantID }

// Redact drops the errors in full, for a viewer who is not an admin: they
// may name our servers, their addresses and their users.
func (v *ProgressView) Redact() {
	v.ErrorDetail = nil
	for i := range v.Steps {
		v.Steps[i].ErrorDetail = nil
	}
}

// Progress returns the provisioning progress of code.
func Progress(ctx context.Context, sys *sql.DB, code string) (*ProgressView, error) {
	v := &ProgressView{TenantCode: code}
	var createdBy sql.NullInt64
	var errMsg, errDetail sql.NullString
	var params []byte
	err := sys.QueryRowContext(ctx, `
		SELECT p.tenant_id, p.status, p.current_step, p.total_steps, p.progress_percent, p.error_message, p.error_detail, t.created_by, p.params
		FROM tenant_init_progress p JOIN tenants t ON t.id = p.tenant_id WHERE p.tenant_code = ?`, code).
		Scan(&v.tenantID, &v.Status, &v.CurrentStep, &v.TotalSteps, &v.Percent, &errMsg, &errDetail, &createdBy, &params)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fault.New(fault.NotFound, "tenant_not_found", "no provisioning record for tenant %q", code)
	}
	if err != nil {
		return nil, fmt.Errorf("progress of %s: %w", code, err)
	}
	var req Request
	if err := json.Unmarshal(params, &req); err != nil {
		return nil, fmt.Errorf("progress of %s: params: %w", code, err)
	}
	if !req.CreatedByAdmin {
		v.creatorUser = createdBy.Int64
	}
	v.Error, v.ErrorDetail = nullable(errMsg), nullable(errDetail)
	rows, err := sys.QueryContext(ctx, `
		SELECT step_name, step_order, status, started_at, completed_at, error_message, error_detail
		FROM tenant_init_steps WHERE tenant_id = ? ORDER BY step_order`, v.tenantID)
	if err != nil {
		return nil, fmt.Errorf("steps of %s: %w", code, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s StepView
		var started, done sql.NullTime
		var e, detail sql.NullString
		if err := rows.Scan(&s.Name, &s.Order, &s.Status, &started, &done, &e, &detail); err != nil {
			return nil, err
		}
		if started.Valid {
			s.StartedAt = &started.Time
		}
		if done.Valid {
			s.CompletedAt = &done.Time
		}
		s.Error, s.ErrorDetail = nullable(e), nullable(detail)
		v.Steps = append(v.Steps, s)
	}
	return v, rows.Err()
}

func nullable(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// abortClones drops the clones provisioning runs of tenantID reserved and
// never installed (see reserveClone): a run still cloning has lost its
// lease to Abort and drops its own when it finds out.
func (p *Pipeline) abortClones(ctx context.Context, tenantID int64) error {
	var clusters []int64
	var id int64
	err := scanRows(ctx, p.Sys, `SELECT DISTINCT cluster_id FROM warm_pool_databases
		WHERE claimed_by_tenant_id = ? AND status IN ('creating', 'failed')`, []any{tenantID}, []any{&id}, func() { clusters = append(clusters, id) })
	if err != nil {
		return fmt.Errorf("clones: %w", err)
	}
	for _, c := range clusters {
		server, _, err := OpenCluster(ctx, p.Sys, p.Box, c, "")
		if err != nil {
			return err
		}
		err = sqldb.InTx(ctx, p.Sys, func(tx *sql.Tx) error {
			return dropClones(ctx, tx, server, c, tenantID, "its tenant's provisioning was aborted")
		})
		server.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
