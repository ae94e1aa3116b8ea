package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

// placement is the output of the place step.
type placement struct {
	ClusterID int64  `json:"clusterId"`
	Tier      string `json:"tier"`
}

// ErrNoCapacity is returned when no active cluster has room.
var ErrNoCapacity = fault.New(fault.Unavailable, "no_capacity", "no database cluster has room for another tenant")

// place picks the least-loaded active cluster under its capacity (load is
// placed tenants over max_tenants; ties go to the heavier weight). Enterprise
// tenants get the siloed tier.
//
// A tenant placed whose database is not recorded yet (cloning takes
// seconds) counts as placed, until it is recorded or the provisioning is
// aborted: placements go one at a time, holding the
// clusters' rows, and each records its choice before it lets go, so
// concurrent creates never place more than max_tenants on a cluster.
func (p *Pipeline) place(ctx context.Context, st *state) (any, error) {
	var pl placement
	if st.output("place", &pl) {
		return pl, nil
	}
	pl.Tier = tenancy.TierPooled
	if st.req.PlanType == "enterprise" {
		pl.Tier = tenancy.TierSiloed
	}
	err := p.fenced(ctx, st, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT id FROM db_clusters WHERE status = 'active' FOR UPDATE")
		if err != nil {
			return fmt.Errorf("lock clusters: %w", err)
		}
		rows.Close()
		err = tx.QueryRowContext(ctx, `
			SELECT c.id FROM db_clusters c
			LEFT JOIN (SELECT cluster_id, COUNT(*) AS used FROM (
			    SELECT cluster_id FROM tenant_databases WHERE status <> 'dropped'
			    UNION ALL
			    SELECT CAST(JSON_VALUE(s.output, '$.clusterId') AS UNSIGNED) FROM tenant_init_progress g
			    JOIN tenant_init_steps s ON s.tenant_id = g.tenant_id AND s.step_name = 'place' AND s.output IS NOT NULL
			    WHERE g.status IN ('pending', 'running', 'failed') AND g.tenant_id <> ?
			      AND NOT EXISTS (SELECT 1 FROM tenant_databases d WHERE d.tenant_id = g.tenant_id)
			  ) u GROUP BY cluster_id) d
			  ON d.cluster_id = c.id
			WHERE c.status = 'active' AND COALESCE(d.used, 0) < c.max_tenants
			ORDER BY COALESCE(d.used, 0) / c.max_tenants, c.weight DESC, c.id
			LIMIT 1`, st.tenantID).Scan(&pl.ClusterID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoCapacity
		}
		if err != nil {
			return fmt.Errorf("choose cluster: %w", err)
		}
		out, _ := json.Marshal(pl)
		_, err = tx.ExecContext(ctx, "UPDATE tenant_init_steps SET output = ? WHERE tenant_id = ? AND step_name = 'place'", string(out), st.tenantID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return pl, nil
}

// database is the output of the database step.
type database struct {
	Name    string `json:"database"`
	Warm    bool   `json:"warm"`
	Version int    `json:"schemaVersion"`
	DBUser  string `json:"dbUser,omitempty"`
}

// database claims a warm database of the current template version or clones
// one, makes the siloed user when the tier asks for it, and records the
// placement. Rerun after a crash it finds its own earlier work.
//
// The claim and the record go through the run's lease (fenced): a run that
// lost it (see Run) takes no warm database and records nothing, and since a
// tenant's claims go one at a time and find the database it holds, two runs
// of one tenant end up with one database, never handing it back to the pool.
//
// A clone is made under a name of the run's own (see reserveClone), never
// under the tenant's: a run that lost its lease while cloning, however long
// it stalled, can neither drop nor overwrite the database the run holding
// the lease made, seeded and recorded. The clone becomes the tenant's
// database (prefix + code) only under the lease, in the transaction that
// records it (see install); a clone that is not installed is dropped by its
// run, or, when that run died, by the next run of the tenant (or a refill's
// sweep, or Abort).
func (p *Pipeline) database(ctx context.Context, st *state) (any, error) {
	var pl placement
	if !st.output("place", &pl) {
		return nil, errors.New("no placement recorded")
	}
	var out database
	var existing sql.NullString
	err := p.Sys.QueryRowContext(ctx, "SELECT database_name, schema_version, db_user FROM tenant_databases WHERE tenant_id = ?", st.tenantID).
		Scan(&out.Name, &out.Version, &existing)
	if err == nil {
		out.DBUser = existing.String
		return out, nil // recorded before a crash
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read placement: %w", err)
	}
	server, _, err := OpenCluster(ctx, p.Sys, p.Box, pl.ClusterID, "")
	if err != nil {
		return nil, err
	}
	defer server.Close()
	if out.Version, err = p.templateVersion(ctx, server, pl.ClusterID); err != nil {
		return nil, err
	}
	name, err := DatabaseName(p.Prefix, st.code)
	if err != nil {
		return nil, err
	}
	if err := p.crash("database:claim"); err != nil {
		return nil, err
	}
	var ok bool
	var clone poolRow
	err = p.fenced(ctx, st, func(tx *sql.Tx) error {
		// Clones of earlier runs were never installed (this run holds the
		// lease, so they never will be): they are no one's.
		if err := dropClones(ctx, tx, server, pl.ClusterID, st.tenantID, "made by an earlier run of its tenant's provisioning"); err != nil {
			return err
		}
		var err error
		if out.Name, ok, err = claimWarm(ctx, tx, pl.ClusterID, out.Version, st.tenantID); err != nil || ok {
			return err
		}
		clone, err = reserveClone(ctx, tx, p.Prefix, pl.ClusterID, out.Version, st.tenantID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim warm database or reserve a clone: %w", err)
	}
	if ok {
		out.Warm = true
	} else {
		out.Name = name
		if err := p.crash("database:clone"); err != nil {
			return nil, err
		}
		if err := CloneDatabase(ctx, server, p.Template, clone.name, p.Parallel); err != nil {
			return nil, p.dropClone(ctx, server, clone, fmt.Errorf("clone: %w", err))
		}
		if err := p.crash("database:cloned"); err != nil {
			return nil, err
		}
	}
	err = p.fenced(ctx, st, func(tx *sql.Tx) error {
		// The siloed user is (re)keyed here, holding the lease, so a run
		// that lost it cannot change the password the holder records.
		var sealed []byte
		if pl.Tier == tenancy.TierSiloed {
			var pw string
			var err error
			if out.DBUser, pw, err = p.siloUser(ctx, server, out.Name); err != nil {
				return err
			}
			sealed = p.Box.Seal([]byte(pw), tenancy.SiloSecretAAD(st.tenantID))
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, tier, db_user, db_password_encrypted, schema_version, status, last_migrated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', ?)`,
			st.tenantID, pl.ClusterID, out.Name, pl.Tier, nullString(out.DBUser), sealed, out.Version, p.now())
		if err != nil {
			return fmt.Errorf("record placement: %w", err)
		}
		if ok {
			return nil
		}
		return p.install(ctx, tx, server, clone, out.Name)
	})
	if err != nil {
		if !ok {
			// Not installed (the lease lost, or the install failed): the
			// clone is this run's alone, and no one else will drop it now.
			err = p.dropClone(ctx, server, clone, err)
		}
		return nil, err
	}
	return out, nil
}

// reserveClone records, in tx, the database a run is about to clone for
// tenantID: a warm pool row "creating" that the tenant holds (never claimed:
// no claim takes a row that is not ready), named as warm databases are, so
// no tenant's database can have its name (Validate). Should the run die,
// the row leads the tenant's next run (dropClones), Abort and a refill's
// sweep (RefillPool) to what it left.
func reserveClone(ctx context.Context, tx *sql.Tx, prefix string, clusterID int64, version int, tenantID int64) (poolRow, error) {
	r := poolRow{name: warmDatabaseName(prefix), version: version}
	if err := sqldb.ValidateIdent(r.name); err != nil {
		return r, fmt.Errorf("clone name (database prefix %q): %w", prefix, err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO warm_pool_databases (cluster_id, database_name, schema_version, status, claimed_by_tenant_id)
		VALUES (?, ?, ?, 'creating', ?)`, clusterID, r.name, version, tenantID)
	if err == nil {
		r.id, err = res.LastInsertId()
	}
	if err != nil {
		return r, fmt.Errorf("record the clone %s: %w", r.name, err)
	}
	return r, nil
}

// install makes clone the tenant's database name, in tx (the run's fenced
// transaction, which records the placement and holds the tenant's
// progress: no other run of the tenant can be installing): the clone's row
// is taken out of the pool table, whatever a failed install left under
// name is dropped (name is never recorded without its tables: see below),
// and the clone's tables are moved into name in one RENAME TABLE, which is
// atomic. A clone whose tables are not the template's is refused: one a
// sweep took for a leftover and began to drop, or one the template has
// since outgrown by a table (the next run clones again).
//
// The statements on the cluster come last and fail without retry, so the
// transaction either commits after all of them or rolls back, and a name
// left without its record is just a failed install's leftover.
func (p *Pipeline) install(ctx context.Context, tx *sql.Tx, server *sql.DB, clone poolRow, name string) error {
	var status string
	err := tx.QueryRowContext(ctx, "SELECT status FROM warm_pool_databases WHERE id = ? FOR UPDATE", clone.id).Scan(&status)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("install %s: %w", clone.name, err)
	}
	if status != "creating" {
		return fmt.Errorf("install %s: the clone was discarded (%q) before it was installed", clone.name, status)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM warm_pool_databases WHERE id = ?", clone.id); err != nil {
		return fmt.Errorf("install %s: %w", clone.name, err)
	}
	charset, collation, tables, err := templateTables(ctx, server, p.Template)
	if err != nil {
		return fmt.Errorf("install %s: %v", clone.name, err)
	}
	cloned, err := queryStrings(ctx, server, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, clone.name)
	if err != nil {
		return fmt.Errorf("install %s: list tables: %v", clone.name, err)
	}
	if !slices.Equal(cloned, tables) {
		return fmt.Errorf("install %s: its %d tables are not the template's %d", clone.name, len(cloned), len(tables))
	}
	qClone, err := sqldb.QuoteIdent(clone.name)
	if err != nil {
		return err
	}
	qName, err := sqldb.QuoteIdent(name)
	if err != nil {
		return err
	}
	moves := make([]string, len(tables))
	for i, t := range tables {
		moves[i] = qClone + ".`" + t + "` TO " + qName + ".`" + t + "`"
	}
	for _, s := range []struct{ what, stmt string }{
		{"drop a failed install's leftover", "DROP DATABASE IF EXISTS " + qName},
		{"create", "CREATE DATABASE " + qName + " CHARACTER SET " + charset + " COLLATE " + collation},
		{"move the tables", "RENAME TABLE " + strings.Join(moves, ", ")},
		{"drop the emptied clone", "DROP DATABASE " + qClone},
	} {
		if _, err := server.ExecContext(ctx, s.stmt); err != nil {
			// %v: not a lock error InTxRetry would run all this again for.
			return fmt.Errorf("install %s as %s: %s: %v", clone.name, name, s.what, err)
		}
	}
	return nil
}

// dropClone drops a clone of this run that was not installed, because of
// cause, and marks its row discarded (failed, for the next sweep, when the
// drop fails). It returns cause, with the error of the discard if any.
func (p *Pipeline) dropClone(ctx context.Context, server *sql.DB, clone poolRow, cause error) error {
	pl := &pool{sys: p.Sys, server: server}
	if _, err := pl.discard(context.WithoutCancel(ctx), clone, "not installed: "+cause.Error()); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// dropClones drops the clones tenantID's earlier provisioning runs reserved
// on cluster clusterID and never installed, and marks their rows discarded
// (or failed, for a refill's sweep, when a drop fails), in tx.
func dropClones(ctx context.Context, tx *sql.Tx, server *sql.DB, clusterID, tenantID int64, why string) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, database_name FROM warm_pool_databases
		WHERE claimed_by_tenant_id = ? AND cluster_id = ? AND status IN ('creating', 'failed') ORDER BY id FOR UPDATE`, tenantID, clusterID)
	if err != nil {
		return fmt.Errorf("clones of tenant %d: %w", tenantID, err)
	}
	var left []poolRow
	for rows.Next() {
		var r poolRow
		if err := rows.Scan(&r.id, &r.name); err != nil {
			rows.Close()
			return err
		}
		left = append(left, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range left {
		status, msg := "discarded", why
		if err := sqldb.DropDatabase(ctx, server, r.name); err != nil && !errors.Is(err, sqldb.ErrBadIdent) {
			status, msg = "failed", why+"; drop: "+err.Error()
		}
		if _, err := tx.ExecContext(ctx, "UPDATE warm_pool_databases SET status = ?, last_error = ? WHERE id = ?", status, msg, r.id); err != nil {
			return fmt.Errorf("discard clone %s: %w", r.name, err)
		}
	}
	return nil
}

// templateVersion returns the cluster's template version, bringing the
// template up to date first when it is behind (one query when it is not:
// provision-cron keeps it current).
func (p *Pipeline) templateVersion(ctx context.Context, server *sql.DB, clusterID int64) (int, error) {
	ms, err := schema.Tenant()
	if err != nil {
		return 0, err
	}
	if v, err := DatabaseVersion(ctx, server, p.Template); err == nil && v == migration.Latest(ms) {
		return v, nil
	}
	res, err := EnsureClusterTemplate(ctx, p.Sys, p.Box, clusterID, p.Template, p.Log)
	if err != nil {
		return 0, fmt.Errorf("template on cluster %d: %w", clusterID, err)
	}
	return res.To, nil
}

// siloUserName is the MySQL user of a siloed database: derived from the
// database name, so a rerun finds the same user.
func siloUserName(database string) string {
	sum := sha256.Sum256([]byte(database))
	return "ut_" + hex.EncodeToString(sum[:])[:16]
}

// siloUser creates (or re-keys) the user that may reach database and nothing
// else, and returns its name and new password.
func (p *Pipeline) siloUser(ctx context.Context, server *sql.DB, database string) (string, string, error) {
	user := siloUserName(database)
	var b [24]byte
	_, _ = rand.Read(b[:])
	pw := base64.RawURLEncoding.EncodeToString(b[:]) // no quote can appear in it
	q, err := sqldb.QuoteIdent(database)
	if err != nil {
		return "", "", err
	}
	// In the database of a database-level GRANT, '_' and '%' are
	// wildcards: unescaped, `tenant_a_b`.* would also grant tenant_axb.
	escaped := strings.NewReplacer("_", `\_`, "%", `\%`).Replace(q)
	host := p.SiloUserHost
	for _, stmt := range []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s'", user, host, pw),
		fmt.Sprintf("ALTER USER '%s'@'%s' IDENTIFIED BY '%s'", user, host, pw),
		fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES, LOCK TABLES ON %s.* TO '%s'@'%s'", escaped, user, host),
	} {
		if _, err := server.ExecContext(ctx, stmt); err != nil {
			return "", "", fmt.Errorf("siloed user for %s: %w", database, err)
		}
	}
	if escaped != q {
		// A user made before grants were escaped holds the wildcard one
		// too: provisioning it again takes that away.
		_, err := server.ExecContext(ctx, fmt.Sprintf("REVOKE ALL PRIVILEGES ON %s.* FROM '%s'@'%s'", q, user, host))
		if err != nil && !isNoSuchGrant(err) {
			return "", "", fmt.Errorf("siloed user for %s: revoke the wildcard grant: %w", database, err)
		}
	}
	return user, pw, nil
}

// withTenantDB runs fn on an admin pool on the tenant's database.
func (p *Pipeline) withTenantDB(ctx context.Context, st *state, fn func(*sql.DB) error) error {
	var pl placement
	var db database
	if !st.output("place", &pl) || !st.output("database", &db) {
		return errors.New("no database recorded")
	}
	conn, _, err := OpenCluster(ctx, p.Sys, p.Box, pl.ClusterID, db.Name)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

// maxCampusName is the width of kindergartens.name, narrower than a tenant's
// name may be: the main campus takes the name's start.
const maxCampusName = 128

// seed writes the tenant's own data into its database: its name and contact
// in tenant_config, its main campus. Upserts, so reruns change nothing.
func (p *Pipeline) seed(ctx context.Context, st *state) (any, error) {
	r := st.req
	err := p.withTenantDB(ctx, st, func(db *sql.DB) error {
		for k, v := range map[string]string{
			"tenant.name": r.Name, "tenant.site_name": r.Name, "tenant.contact_phone": r.ContactPhone, "tenant.contact_email": r.ContactEmail,
		} {
			if _, err := db.ExecContext(ctx, `
				INSERT INTO tenant_config (config_key, config_value) VALUES (?, ?)
				ON DUPLICATE KEY UPDATE config_value = VALUES(config_value)`, k, v); err != nil {
				return fmt.Errorf("tenant_config %s: %w", k, err)
			}
		}
		_, err := db.ExecContext(ctx, `
			INSERT INTO kindergartens (code, name, phone, email)
			SELECT 'main', LEFT(?, ?), ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM kindergartens WHERE code = 'main')`,
			r.Name, maxCampusName, r.ContactPhone, r.ContactEmail)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	return map[string]string{"campus": "main"}, nil
}

// admin makes the requesting global user the tenant's admin: the relation in
// the system database and the tenant user with the admin role.
func (p *Pipeline) admin(ctx context.Context, st *state) (any, error) {
	if st.req.AdminUserID == 0 {
		return map[string]bool{"skipped": true}, nil
	}
	var phone string
	var name sql.NullString
	if err := p.Sys.QueryRowContext(ctx, "SELECT phone, real_name FROM global_users WHERE id = ?", st.req.AdminUserID).Scan(&phone, &name); err != nil {
		return nil, fmt.Errorf("admin user %d: %w", st.req.AdminUserID, err)
	}
	var res tenantapp.BindResult
	err := p.withTenantDB(ctx, st, func(db *sql.DB) error {
		var err error
		res, err = tenantapp.Bind(ctx, p.Sys, db, tenantapp.Binding{GlobalUserID: st.req.AdminUserID, Phone: phone,
			RealName: name.String, TenantID: st.tenantID, TenantCode: st.code, Role: "admin"})
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]int64{"globalUserId": st.req.AdminUserID, "tenantUserId": res.TenantUserID}, nil
}

// storage allocates the tenant's object prefix and its folder layout.
func (p *Pipeline) storage(ctx context.Context, st *state) (any, error) {
	if p.Storage == nil {
		return nil, errors.New("no object store configured")
	}
	prefix, err := p.Storage.Allocate(ctx, st.code)
	if err != nil {
		return nil, fmt.Errorf("allocate storage: %w", err)
	}
	if _, err := p.Sys.ExecContext(ctx, "UPDATE tenants SET storage_prefix = ? WHERE id = ?", prefix, st.tenantID); err != nil {
		return nil, fmt.Errorf("record storage prefix: %w", err)
	}
	return map[string]string{"prefix": prefix}, nil
}

// aiModels enables the default AI models for the tenant.
func (p *Pipeline) aiModels(ctx context.Context, st *state) (any, error) {
	if _, err := p.Sys.ExecContext(ctx, `
		INSERT INTO tenant_ai_model_configs (tenant_id, model_id, is_enabled, priority)
		SELECT ?, id, 1, 100 FROM ai_model_config WHERE is_default = 1 AND status = 'active'
		ON DUPLICATE KEY UPDATE tenant_id = tenant_id`, st.tenantID); err != nil {
		return nil, fmt.Errorf("default AI models: %w", err)
	}
	var n int
	if err := p.Sys.QueryRowContext(ctx, "SELECT COUNT(*) FROM tenant_ai_model_configs WHERE tenant_id = ?", st.tenantID).Scan(&n); err != nil {
		return nil, err
	}
	return map[string]int{"models": n}, nil
}

// activate opens the tenant: its account, then status active, its audit
// row (see auditActivation) and tenant.created in the outbox, all in one
// transaction holding the lease. The audit row and the event go with the
// one change from provisioning to active, so a rerun (after a crash before
// the step was recorded, or by another run) finds the tenant active and
// writes neither: each is written exactly once, or not at all with the
// activation.
func (p *Pipeline) activate(ctx context.Context, st *state) (any, error) {
	err := p.fenced(ctx, st, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO tenant_accounts (tenant_id) VALUES (?)", st.tenantID); err != nil {
			return fmt.Errorf("account: %w", err)
		}
		now := p.now()
		res, err := tx.ExecContext(ctx, `UPDATE tenants SET status = 'active', activated_at = COALESCE(activated_at, ?)
			WHERE id = ? AND status = 'provisioning'`, now, st.tenantID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // activated before
		}
		var name, subdomain, plan string
		if err := tx.QueryRowContext(ctx, "SELECT tenant_name, subdomain, plan_type FROM tenants WHERE id = ?", st.tenantID).
			Scan(&name, &subdomain, &plan); err != nil {
			return err
		}
		if err := p.auditActivation(ctx, tx, st, name); err != nil {
			return err
		}
		_, err = notify.Emit(ctx, tx, notify.Event{Type: notify.TenantCreated, TenantID: st.tenantID, TenantCode: st.code,
			Data: map[string]any{"name": name, "subdomain": subdomain, "planType": plan, "activatedAt": now.Truncate(time.Millisecond)}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("activate: %w", err)
	}
	return map[string]string{"status": tenancy.StatusActive}, nil
}

// auditActivation writes, in tx, the audit_logs row of the activation of
// st's tenant (action tenant.activate), as every lifecycle transition has
// one. Its shape is lifecycle.Audit's, which cannot be called from here
// (lifecycle imports this package): the states before and after are
// lifecycle.Tenant's. The actor is who asked for the tenant, as the request
// recorded it (an admin or a global user), else the system, named by this
// run's owner (the activation may come from provision-cron resuming it).
func (p *Pipeline) auditActivation(ctx context.Context, tx *sql.Tx, st *state, name string) error {
	owner := p.Owner
	if r := []rune(owner); len(r) > 100 { // actor_name's width
		owner = string(r[:100])
	}
	actorType, actorID, actorName := "system", any(nil), any(owner)
	if st.req.CreatedBy != 0 {
		actorType, actorID, actorName = "user", st.req.CreatedBy, nil
		if st.req.CreatedByAdmin {
			actorType = "admin"
		}
	}
	type tenantState struct {
		ID     int64  `json:"id"`
		Code   string `json:"tenantCode"`
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	before, _ := json.Marshal(tenantState{st.tenantID, st.code, name, tenancy.StatusProvisioning})
	after, _ := json.Marshal(tenantState{st.tenantID, st.code, name, tenancy.StatusActive})
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_logs (actor_type, actor_id, actor_name, action, target_type, target_id, tenant_id,
		before_state, after_state, request_id) VALUES (?, ?, ?, 'tenant.activate', 'tenant', ?, ?, ?, ?, ?)`,
		actorType, actorID, actorName, st.code, st.tenantID, string(before), string(after), nullString(logging.RequestID(ctx)))
	if err != nil {
		return fmt.Errorf("audit activation: %w", err)
	}
	return nil
}

// isNoSuchGrant tells MySQL's error 1141: the user holds no such grant.
func isNoSuchGrant(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1141
}
