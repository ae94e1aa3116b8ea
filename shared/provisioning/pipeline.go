package provisioning

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// The steps of tenant creation, in order (seed 000 §5.1). validate and
// reserve run synchronously in Start, so the progress record exists from the
// first moment; Run does the rest and can be resumed after any crash.
var Steps = []string{"validate", "reserve", "place", "database", "seed", "admin", "storage", "ai_models", "activate"}

// DefaultCodePattern is what a new tenant code must look like unless
// TENANT_CODE_PATTERN says otherwise (seed 000: k001, k002...).
const DefaultCodePattern = `^k\d{3,}$`

// warmName is what a warm pool database is called after the prefix (see
// RefillPool); no tenant code may map to it.
var warmName = regexp.MustCompile(`^w[0-9a-f]{12}$`)

// Plans a tenant can be on; enterprise tenants get a siloed database.
var Plans = []string{"basic", "standard", "premium", "enterprise"}

// Request is what creating a tenant needs. It is stored with the progress
// (no secrets in it) so any process can resume the work.
type Request struct {
	Code         string `json:"tenantCode"`
	Name         string `json:"name"`
	ContactName  string `json:"contactName"`
	ContactEmail string `json:"contactEmail"`
	ContactPhone string `json:"contactPhone"`
	Subdomain    string `json:"subdomain,omitempty"`
	Address      string `json:"address,omitempty"`
	Description  string `json:"description,omitempty"`
	PlanType     string `json:"planType,omitempty"`
	// AdminUserID is the global user who becomes the tenant's admin (0: none).
	AdminUserID int64 `json:"adminUserId,omitempty"`
	// CreatedBy is recorded on the tenant (a global user or admin id).
	CreatedBy int64 `json:"createdBy,omitempty"`
	// CreatedByAdmin says CreatedBy is an admin_users id: the two tables are
	// numbered apart, so the id alone does not say who the creator is.
	CreatedByAdmin bool `json:"createdByAdmin,omitempty"`
}

// Storage allocates and removes a tenant's object-store prefix.
type Storage interface {
	// Prefix is where tenant code's objects live.
	Prefix(code string) string
	// Allocate makes the prefix's folder layout (idempotent) and returns it.
	Allocate(ctx context.Context, code string) (prefix string, err error)
	// Remove deletes every object under prefix.
	Remove(ctx context.Context, prefix string) error
}

// Pipeline creates tenants step by step, recording every step in
// tenant_init_steps. Each step is idempotent: rerunning one that crashed half
// way finishes it without doing anything twice.
type Pipeline struct {
	Sys      *sql.DB
	Box      *secretbox.Box
	Storage  Storage
	Template string // the template database on every cluster
	Prefix   string // database names: Prefix + code
	// CodePattern and PhonePattern validate requests.
	CodePattern, PhonePattern *regexp.Regexp
	Reserved                  map[string]bool // subdomains that are never tenants
	SiloUserHost              string          // host part of siloed MySQL users ('%')
	Owner                     string          // this process, for leases
	LeaseTTL                  time.Duration
	MaxAttempts               int
	Parallel                  int // connections used to clone
	// MaxTenantsPerUser is how many tenants one global user may create by
	// self-service and still have (any not purged: a deleted tenant may be
	// restored); 0: no limit. Tenants an admin creates count against nobody.
	MaxTenantsPerUser int
	Now               func() time.Time
	Log               *slog.Logger
	// Crash, when set, runs after each step's work and before the step is
	// recorded, and at points inside a step named step:point
	// ("database:claim": about to take a warm database; "database:clone":
	// about to clone, none claimed; "database:cloned": the clone made, not
	// yet installed); an error simulates the process dying right there
	// (tests).
	Crash func(step string) error

	once sync.Once // fills the defaults once: a pipeline is shared by requests
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now().UTC()
	}
	return time.Now().UTC()
}

func (p *Pipeline) defaults() { p.once.Do(p.fillDefaults) }

func (p *Pipeline) fillDefaults() {
	if p.CodePattern == nil {
		p.CodePattern = regexp.MustCompile(DefaultCodePattern)
	}
	if p.Reserved == nil {
		p.Reserved = map[string]bool{}
		for _, l := range tenancy.DefaultReserved {
			p.Reserved[l] = true
		}
	}
	if p.PhonePattern == nil {
		p.PhonePattern = regexp.MustCompile(`^1[3-9]\d{9}$`)
	}
	if p.LeaseTTL <= 0 {
		p.LeaseTTL = 2 * time.Minute
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.SiloUserHost == "" {
		p.SiloUserHost = "%"
	}
	if p.Template == "" {
		p.Template = DefaultTemplateDatabase
	}
	if p.Prefix == "" {
		p.Prefix = DefaultDatabasePrefix
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	if p.Owner == "" {
		p.Owner = "pipeline"
	}
}

// Validate checks a request, naming every invalid field.
func (p *Pipeline) Validate(r *Request) error {
	p.defaults()
	bad := map[string]string{}
	r.Code = strings.TrimSpace(r.Code)
	if !p.CodePattern.MatchString(r.Code) || !tenancy.ValidCode(r.Code) {
		bad["tenantCode"] = "must match " + p.CodePattern.String()
	} else if name, err := DatabaseName(p.Prefix, r.Code); err != nil || warmName.MatchString(strings.TrimPrefix(name, p.Prefix)) || name == p.Template {
		// Its database step (and Abort) drops the database of that name
		// before cloning it: a warm pool database, which another tenant
		// may have claimed, or the template must never be it.
		bad["tenantCode"] = "names a database this deployment cannot give it"
	} else if p.Storage != nil && p.Storage.Prefix(r.Code) == "" {
		// e.g. "archives" in the layout "{code}/": its prefix would be the
		// platform's archives of other tenants' databases.
		bad["tenantCode"] = "has no storage prefix of its own in this deployment's layout"
	}
	// Stored as checked: padding would not count, yet not fit the columns.
	for _, v := range []*string{&r.Name, &r.ContactName, &r.Address, &r.Description} {
		*v = strings.TrimSpace(*v)
	}
	checkLen := func(field, v string, min, max int) {
		if n := utf8.RuneCountInString(v); n < min || n > max || !utf8.ValidString(v) {
			bad[field] = fmt.Sprintf("must be %d to %d characters", min, max)
		}
	}
	checkLen("name", r.Name, 1, 255)
	checkLen("contactName", r.ContactName, 1, 100)
	checkLen("address", r.Address, 0, 500)
	checkLen("description", r.Description, 0, 2000)
	if problem := ContactPhoneProblem(p.PhonePattern, r.ContactPhone); problem != "" {
		bad["contactPhone"] = problem
	}
	if problem := ContactEmailProblem(r.ContactEmail); problem != "" {
		bad["contactEmail"] = problem
	}
	if r.Subdomain == "" {
		r.Subdomain = r.Code
	}
	r.Subdomain = strings.ToLower(r.Subdomain)
	if !tenancy.ValidCode(r.Subdomain) || p.Reserved[r.Subdomain] {
		bad["subdomain"] = "must be a DNS label that is not reserved"
	} else if len(r.Subdomain) >= 4 && r.Subdomain[2:4] == "--" {
		// "xn--..." is punycode, which a browser shows as another script:
		// a label looking like another tenant's (RFC 5891 reserves every
		// label with "--" there).
		bad["subdomain"] = "must not have \"--\" as its third and fourth characters (punycode)"
	}
	if r.PlanType == "" {
		r.PlanType = "basic"
	}
	known := false
	for _, pl := range Plans {
		known = known || pl == r.PlanType
	}
	if !known {
		bad["planType"] = "must be one of " + strings.Join(Plans, ", ")
	}
	if len(bad) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(bad))
	return &fault.Error{Kind: fault.Invalid, Code: "invalid_input", Message: "invalid fields: " + strings.Join(names, ", "), Fields: bad}
}

// Lengths of the tenants columns a contact is kept in.
const (
	maxContactPhone = 20  // contact_phone VARCHAR(20)
	maxContactEmail = 255 // contact_email VARCHAR(255)
)

// ContactPhoneProblem says what is wrong with phone as a tenant's contact
// phone, pattern being PHONE_PATTERN, or "" when nothing is. Tenant
// creation and the admin API's changes check a contact alike, so a tenant
// never holds one that creation would have refused.
func ContactPhoneProblem(pattern *regexp.Regexp, phone string) string {
	switch {
	case !pattern.MatchString(phone):
		return "must match " + pattern.String()
	case utf8.RuneCountInString(phone) > maxContactPhone:
		return fmt.Sprintf("must be at most %d characters", maxContactPhone)
	}
	return ""
}

// ContactEmailProblem says what is wrong with email as a tenant's contact
// e-mail address, or "" when nothing is (see ContactPhoneProblem).
func ContactEmailProblem(email string) string {
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email || len(email) > maxContactEmail {
		return "must be a plain e-mail address"
	}
	return ""
}

// Start validates r and reserves its code and subdomain: the tenant row
// (status provisioning), its progress and its steps, in one transaction.
// Concurrent requests for one code: exactly one wins, the others get 409
// tenant_code_taken. It returns the tenant id; Run does the rest.
func (p *Pipeline) Start(ctx context.Context, r Request) (int64, error) {
	var id int64
	err := sqldb.InTxRetry(ctx, p.Sys, func(tx *sql.Tx) error {
		var err error
		id, err = p.StartTx(ctx, tx, r)
		return err
	})
	return id, err
}

// underUserLimit refuses, in tx, a creation by global user user when
// they already have MaxTenantsPerUser tenants. Their account's row, locked
// until tx ends, queues one user's creations, so two at once cannot both
// take the last place; the count is a locking read, which sees every
// tenant committed before it whatever tx read earlier.
func (p *Pipeline) underUserLimit(ctx context.Context, tx *sql.Tx, user int64) error {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM global_users WHERE id = ? FOR UPDATE", user).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return fault.New(fault.Forbidden, "account_disabled", "the account no longer exists")
	}
	if err == nil {
		err = tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM tenants WHERE created_by_user = ? AND status <> 'purged' LOCK IN SHARE MODE", user).Scan(&n)
	}
	if err != nil {
		return fmt.Errorf("count the tenants of user %d: %w", user, err)
	}
	if n >= p.MaxTenantsPerUser {
		return fault.New(fault.Forbidden, "tenant_limit_reached",
			"you have %d tenants, the most one account may create (deleted ones count until they are purged); ask an administrator for more", n)
	}
	return nil
}

// StartTx is Start inside the caller's transaction (so, say, an SMS code is
// consumed only when the tenant is reserved).
func (p *Pipeline) StartTx(ctx context.Context, tx *sql.Tx, r Request) (int64, error) {
	if err := p.Validate(&r); err != nil {
		return 0, err
	}
	var byUser int64 // the self-service creator
	if !r.CreatedByAdmin {
		byUser = r.CreatedBy
	}
	if byUser != 0 && p.MaxTenantsPerUser > 0 {
		if err := p.underUserLimit(ctx, tx, byUser); err != nil {
			return 0, err
		}
	}
	params, _ := json.Marshal(r)
	now := p.now()
	res, err := tx.ExecContext(ctx, `
		INSERT INTO tenants (tenant_code, tenant_name, subdomain, status, plan_type, contact_name, contact_phone,
		  contact_email, address, description, created_by, created_by_user)
		VALUES (?, ?, ?, 'provisioning', ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Code, strings.TrimSpace(r.Name), r.Subdomain, r.PlanType, r.ContactName, r.ContactPhone, r.ContactEmail,
		nullString(r.Address), nullString(r.Description), nullInt(r.CreatedBy), nullInt(byUser))
	if sqldb.IsDuplicate(err) {
		// By the key named last, not by a word the duplicate value may hold.
		if strings.HasSuffix(err.Error(), "uk_tenants_subdomain'") {
			return 0, fault.New(fault.Conflict, "subdomain_taken", "subdomain %q is taken", r.Subdomain)
		}
		return 0, fault.New(fault.Conflict, "tenant_code_taken", "tenant code %q is taken", r.Code)
	}
	if err != nil {
		return 0, fmt.Errorf("reserve tenant %s: %w", r.Code, err)
	}
	id, _ := res.LastInsertId()
	res, err = tx.ExecContext(ctx, `
		INSERT INTO tenant_init_progress (tenant_id, tenant_code, status, current_step, current_step_name, total_steps,
		  progress_percent, params, started_at)
		VALUES (?, ?, 'pending', 2, 'reserve', ?, ?, ?, ?)`,
		id, r.Code, len(Steps), percent(2), string(params), now)
	if err != nil {
		return 0, fmt.Errorf("progress of %s: %w", r.Code, err)
	}
	progressID, _ := res.LastInsertId()
	for i, name := range Steps {
		status, started, done := "pending", any(nil), any(nil)
		if i < 2 {
			status, started, done = "completed", now, now
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO tenant_init_steps (tenant_id, progress_id, step_name, step_order, status, started_at, completed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, id, progressID, name, i+1, status, started, done); err != nil {
			return 0, fmt.Errorf("steps of %s: %w", r.Code, err)
		}
	}
	p.Log.InfoContext(ctx, "tenant reserved", "tenant", r.Code, "tenant_id", id)
	return id, nil
}

func percent(done int) int { return done * 100 / len(Steps) }

// ErrBusy is returned when another process holds the tenant's lease.
var ErrBusy = fault.New(fault.Conflict, "provisioning_in_progress", "another process is provisioning this tenant; retry shortly")

// ErrLeaseLost stops a run whose lease another run (or Abort) has taken
// since: its lease expired while it was slow, or the same process started
// a second run. The other run carries on; this one records nothing more.
var ErrLeaseLost = fault.New(fault.Conflict, "provisioning_lease_lost", "another run took this tenant's provisioning over")

// state is what the steps of one run share.
type state struct {
	tenantID int64
	code     string
	req      Request
	outputs  map[string]json.RawMessage
	// gen is the run's generation: tenant_init_progress.attempts as its
	// lease set it. Every lease adds one, so a run is the tenant's current
	// one exactly while the row still holds its generation and owner.
	gen int64
}

// crashed is an error of the Crash hook inside a step: Run stops as if the
// process died there.
type crashed struct{ error }

// crash calls the Crash hook at point.
func (p *Pipeline) crash(point string) error {
	if p.Crash == nil {
		return nil
	}
	if err := p.Crash(point); err != nil {
		return crashed{err}
	}
	return nil
}

func (s *state) output(step string, v any) bool {
	raw, ok := s.outputs[step]
	return ok && len(raw) > 0 && json.Unmarshal(raw, v) == nil
}

// Run does the steps of tenant code that are not done yet, under a lease so
// two processes never run one tenant at once. A failed step marks the
// progress failed with its error; provision-cron retries it.
//
// A lease can still end under a run that goes on (it expired while the run
// was slow; the same owner leased again). So what a run records, and the
// warm database it takes, goes through fenced: once another run has leased
// the tenant, the earlier one stops with ErrLeaseLost and changes nothing
// more (its steps' own work is idempotent and the same as the new run's).
func (p *Pipeline) Run(ctx context.Context, code string) error {
	p.defaults()
	st, err := p.lease(ctx, code)
	if err != nil || st == nil {
		return err
	}
	steps := map[string]func(context.Context, *state) (any, error){
		"place": p.place, "database": p.database, "seed": p.seed, "admin": p.admin,
		"storage": p.storage, "ai_models": p.aiModels, "activate": p.activate,
	}
	statuses, err := p.stepStatuses(ctx, st.tenantID)
	if err != nil {
		return err
	}
	for i, name := range Steps {
		if i < 2 || statuses[name] == "completed" {
			continue
		}
		if err := p.beginStep(ctx, st, i, name); err != nil {
			return err
		}
		out, err := steps[name](ctx, st)
		var died crashed
		if errors.As(err, &died) {
			return died.error // the process "dies": nothing recorded, lease kept
		}
		if err != nil {
			if !errors.Is(err, ErrLeaseLost) {
				p.failStep(context.WithoutCancel(ctx), st, name, err)
			}
			return fmt.Errorf("provision %s: %s: %w", code, name, err)
		}
		if p.Crash != nil {
			if err := p.Crash(name); err != nil {
				return err // the process "dies": nothing recorded, lease kept
			}
		}
		raw, _ := json.Marshal(out)
		st.outputs[name] = raw
		if err := p.completeStep(ctx, st, i, name, raw); err != nil {
			return err
		}
	}
	err = p.fenced(ctx, st, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			UPDATE tenant_init_progress SET status = 'completed', current_step = ?, current_step_name = 'activate',
			  progress_percent = 100, error_message = NULL, error_detail = NULL, completed_at = ?, lease_owner = NULL, lease_expires_at = NULL
			WHERE tenant_id = ?`, len(Steps), p.now(), st.tenantID)
		return err
	})
	if err != nil {
		return fmt.Errorf("provision %s: finish: %w", code, err)
	}
	p.Log.InfoContext(ctx, "tenant provisioned", "tenant", code)
	return nil
}

// lease takes the tenant's progress for this process, as a new generation
// (see state.gen); nil state when it is already completed.
func (p *Pipeline) lease(ctx context.Context, code string) (*state, error) {
	st := &state{code: code, outputs: map[string]json.RawMessage{}}
	var status string
	var params []byte
	var leased bool
	err := sqldb.InTxRetry(ctx, p.Sys, func(tx *sql.Tx) error {
		now := p.now()
		res, err := tx.ExecContext(ctx, `
			UPDATE tenant_init_progress SET lease_owner = ?, lease_expires_at = ?, status = 'running', attempts = attempts + 1
			WHERE tenant_code = ? AND status IN ('pending', 'running', 'failed')
			  AND (lease_owner IS NULL OR lease_expires_at < ? OR lease_owner = ?)`,
			p.Owner, now.Add(p.LeaseTTL), code, now, p.Owner)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		leased = n > 0
		// Read in the transaction of the lease: the generation is this
		// run's, not that of a run leasing just after.
		return tx.QueryRowContext(ctx, `SELECT tenant_id, status, params, attempts FROM tenant_init_progress WHERE tenant_code = ?`, code).
			Scan(&st.tenantID, &status, &params, &st.gen)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fault.New(fault.NotFound, "tenant_not_found", "no tenant %q is being provisioned", code)
	}
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", code, err)
	}
	if !leased {
		if status == "completed" {
			return nil, nil
		}
		return nil, ErrBusy
	}
	if err := json.Unmarshal(params, &st.req); err != nil {
		return nil, fmt.Errorf("lease %s: params: %w", code, err)
	}
	if err := p.loadOutputs(ctx, st.tenantID, st); err != nil {
		return nil, fmt.Errorf("lease %s: %w", code, err)
	}
	return st, nil
}

func (p *Pipeline) stepStatuses(ctx context.Context, tenantID int64) (map[string]string, error) {
	rows, err := p.Sys.QueryContext(ctx, "SELECT step_name, status FROM tenant_init_steps WHERE tenant_id = ?", tenantID)
	if err != nil {
		return nil, fmt.Errorf("read steps: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, s string
		if err := rows.Scan(&n, &s); err != nil {
			return nil, err
		}
		out[n] = s
	}
	return out, rows.Err()
}

// fenced runs fn in a transaction holding the tenant's progress row, if this
// run still holds the lease it took (its generation and owner, status
// running); else it is ErrLeaseLost and fn does not run. A lease taken by
// another run waits for the transaction, so fn's changes are either made
// before the other run leased (and found by it) or not at all. fn may be
// nil: a check alone.
func (p *Pipeline) fenced(ctx context.Context, st *state, fn func(*sql.Tx) error) error {
	return sqldb.InTxRetry(ctx, p.Sys, func(tx *sql.Tx) error {
		var gen int64
		var owner sql.NullString
		var status string
		err := tx.QueryRowContext(ctx, "SELECT attempts, lease_owner, status FROM tenant_init_progress WHERE tenant_id = ? FOR UPDATE", st.tenantID).
			Scan(&gen, &owner, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrLeaseLost // aborted
		}
		if err != nil {
			return fmt.Errorf("check lease: %w", err)
		}
		if gen != st.gen || owner.String != p.Owner || status != "running" {
			return ErrLeaseLost
		}
		if fn == nil {
			return nil
		}
		return fn(tx)
	})
}

func (p *Pipeline) beginStep(ctx context.Context, st *state, i int, name string) error {
	err := p.fenced(ctx, st, func(tx *sql.Tx) error {
		now := p.now()
		if _, err := tx.ExecContext(ctx, `
			UPDATE tenant_init_steps SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, ?), error_message = NULL, error_detail = NULL
			WHERE tenant_id = ? AND step_name = ?`, now, st.tenantID, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			UPDATE tenant_init_progress SET current_step = ?, current_step_name = ?, lease_expires_at = ?, error_message = NULL, error_detail = NULL
			WHERE tenant_id = ?`, i+1, name, now.Add(p.LeaseTTL), st.tenantID)
		return err
	})
	if err != nil {
		return fmt.Errorf("provision %s: step %s: %w", st.code, name, err)
	}
	return nil
}

func (p *Pipeline) completeStep(ctx context.Context, st *state, i int, name string, out []byte) error {
	err := p.fenced(ctx, st, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			UPDATE tenant_init_steps SET status = 'completed', output = ?, completed_at = ? WHERE tenant_id = ? AND step_name = ?`,
			string(out), p.now(), st.tenantID, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE tenant_init_progress SET progress_percent = ? WHERE tenant_id = ?", percent(i+1), st.tenantID)
		return err
	})
	if err != nil {
		return fmt.Errorf("provision %s: step %s: record: %w", st.code, name, err)
	}
	return nil
}

// failStep records the failure of step name, unless the run has lost its
// lease: the run now holding it must not be marked failed by this one. The
// tenant's creator and members see a refusal's own message, or only that an
// internal error stopped the step; admins see the error in full, which may
// name our servers (error_detail).
func (p *Pipeline) failStep(ctx context.Context, st *state, name string, cause error) {
	public := "an internal error stopped this step"
	if fe, ok := fault.As(cause); ok && fe.Kind != fault.Internal {
		public = sqldb.Text(fe.Message, 2000)
	}
	detail := sqldb.Text(cause.Error(), 2000) // a cut mid-character would fail the row's update
	_ = p.fenced(ctx, st, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE tenant_init_steps SET status = 'failed', error_message = ?, error_detail = ? WHERE tenant_id = ? AND step_name = ?",
			public, detail, st.tenantID, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			UPDATE tenant_init_progress SET status = 'failed', error_message = ?, error_detail = ?, lease_owner = NULL, lease_expires_at = NULL
			WHERE tenant_id = ?`, name+": "+public, name+": "+detail, st.tenantID)
		return err
	})
	p.Log.WarnContext(ctx, "provisioning step failed", "tenant", st.code, "step", name, "err", cause)
}

// Resume runs the tenants whose provisioning is unfinished: pending, running
// with an expired lease (a process died), or failed fewer than MaxAttempts
// times. It returns the codes it finished and the errors of the others.
func (p *Pipeline) Resume(ctx context.Context, limit int) ([]string, error) {
	p.defaults()
	now := p.now()
	rows, err := p.Sys.QueryContext(ctx, `
		SELECT tenant_code FROM tenant_init_progress
		WHERE status IN ('pending', 'running', 'failed') AND attempts < ?
		  AND (lease_expires_at IS NULL OR lease_expires_at < ?)
		ORDER BY updated_at LIMIT ?`, p.MaxAttempts, now, limit)
	if err != nil {
		return nil, fmt.Errorf("find unfinished tenants: %w", err)
	}
	var codes []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, err
		}
		codes = append(codes, c)
	}
	rows.Close()
	var done []string
	var errs []error
	for _, c := range codes {
		if err := p.Run(ctx, c); err != nil {
			if !errors.Is(err, ErrBusy) && !errors.Is(err, ErrLeaseLost) { // another run has it
				errs = append(errs, err)
			}
			continue
		}
		done = append(done, c)
	}
	return done, errors.Join(errs...)
}

func nullString(s string) any {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return s
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
