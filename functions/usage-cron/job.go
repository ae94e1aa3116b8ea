package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/storageusage"
	"github.com/unitenant/unitenant/shared/usage"
)

// job is one hourly run, in order:
//
//	reconcile  close the budget reservations past their expiry; one whose
//	           tenant's account is gone is closed as orphaned and logged;
//	           one whose rows another transaction holds is left for the
//	           next run and logged; what the settled ones cost beyond
//	           what they held (not charged) is logged and reported
//	rollup     recompute yesterday's and today's totals (UTC): call logs of
//	           yesterday still land after midnight, and a recomputation is
//	           idempotent, so both are redone every run; and every day since
//	           the last final one (rolledThroughKey), so days the job
//	           missed, down or failing, are caught up, MaxCatchUpDays a run;
//	           each day made final is recorded as soon as it is, so a run
//	           killed or timed out half-way keeps what it did
//	storage    measure the object storage of the tenants not measured for
//	           storageusage.DefaultEvery (storageusage.Measure), within
//	           storageBudget; a scan cut short goes on next run
//
// A failing step does not stop the others; the run still fails, so it alarms.
type job struct {
	db  *sql.DB
	log *slog.Logger
	now func() time.Time
	// store is the object store to measure; nil skips the storage step.
	store         *objectstore.Service
	storageBudget time.Duration // 0: DefaultStorageBudget
}

// DefaultStorageBudget is how long a run measures storage at most: well
// inside the function's timeout (template.yaml: 120 s), with the rollups.
const DefaultStorageBudget = time.Minute

// result is the job's report.
type result struct {
	Days      []usage.Report       `json:"days"`
	Reconcile reconcileReport      `json:"reconcile"`
	Storage   *storageusage.Result `json:"storage,omitempty"`
}

// reconcileReport is budget.ReconcileReport with its money as a decimal;
// the orphaned reservations are logged one by one. Overruns are the settled
// reservations whose call logs cost more than they held, Overrun the excess
// that went uncharged (logged as a warning too).
type reconcileReport struct {
	Settled   int    `json:"settled"`
	Expired   int    `json:"expired"`
	Orphaned  int    `json:"orphaned"`
	Skipped   int    `json:"skipped"`
	Locked    int    `json:"locked"`
	Charged   string `json:"charged"`
	Uncharged string `json:"uncharged"`
	Overruns  int    `json:"overruns"`
	Overrun   string `json:"overrun"`
}

// rolledThroughKey is the system_config row holding the last UTC day whose
// totals are final (YYYY-MM-DD): the day before yesterday of the last run
// that rolled every day up. Set it back to roll days up again.
const rolledThroughKey = "usage.rolled_through"

// MaxCatchUpDays bounds how many missed days one run rolls up, oldest
// first; the next run goes on from there.
const MaxCatchUpDays = 35

func (j *job) run(ctx context.Context) (any, error) {
	now := j.now().UTC()
	today := now.Truncate(24 * time.Hour)
	res := result{Days: []usage.Report{}}
	var errs []error
	// Reservations first: a catch-up of many days may take the rest of the
	// run, and an expired hold keeps refusing its tenant's calls until
	// closed.
	rec, err := budget.Reconcile(ctx, j.db, now)
	res.Reconcile = reconcileReport{Settled: rec.Settled, Expired: rec.Expired, Orphaned: rec.Orphaned, Skipped: rec.Skipped,
		Locked: rec.Locked, Charged: rec.Charged.String(), Uncharged: rec.Uncharged.String(),
		Overruns: rec.Overruns, Overrun: rec.Overrun.String()}
	for _, o := range rec.Orphans {
		// Handled, not failed: worth a look (the tenant was removed while
		// its call ran), not an alarm every hour.
		j.log.WarnContext(ctx, "budget reservation orphaned: its tenant's account no longer exists; closed without charging or releasing anything",
			"call_id", o.RequestID, "tenant_id", o.TenantID, "reserved", o.Reserved.String(), "uncharged", o.Uncharged.String())
	}
	for _, l := range rec.LockedRows {
		// Not failed either: a transaction holding the row for longer
		// than a call is stuck, and worth a look if the row stays held.
		j.log.WarnContext(ctx, "budget reservation left open for the next run: another transaction holds its row, or its account's",
			"call_id", l.RequestID, "tenant_id", l.TenantID, "table", l.Table)
	}
	if more := rec.Locked - len(rec.LockedRows); more > 0 {
		j.log.WarnContext(ctx, "more budget reservations left open for the next run behind held rows", "unlisted", more)
	}
	if rec.Overruns > 0 {
		// Not failed: the reservation is the worst case, so a cost above
		// it means an estimate was wrong, and the excess went uncharged.
		j.log.WarnContext(ctx, "budget reservations settled at less than their call logs' cost: the excess over what they held was not charged",
			"reservations", rec.Overruns, "uncharged", rec.Overrun.String())
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("reconcile reservations: %w", err))
	}
	from, mark, err := j.firstDay(ctx, today)
	if err != nil {
		errs = append(errs, err)
	}
	rolled := err == nil
	var days []time.Time
	for d := from; !d.After(today) && len(days) < MaxCatchUpDays; d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	through := today.AddDate(0, 0, -2) // final once these are rolled up
	if last := days[len(days)-1]; last.Before(through) {
		through = last
	}
	for _, d := range []time.Time{today.AddDate(0, 0, -1), today} {
		if d.After(days[len(days)-1]) { // caught up only so far: still yesterday and today
			days = append(days, d)
		}
	}
	for _, day := range days {
		rep, err := usage.Rollup(ctx, j.db, day, now)
		if err != nil {
			errs, rolled = append(errs, err), false
		}
		if rep.Date != "" { // recorded, if only for some tenants
			res.Days = append(res.Days, rep)
		}
		if rolled && day.Before(through) {
			// Final, as are the days before it: recorded at once, so
			// that a run killed or timed out further on does not start
			// over from the same day, and a long catch-up ends.
			if rolled, err = j.rolledThrough(ctx, &mark, day); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if rolled {
		if _, err := j.rolledThrough(ctx, &mark, through); err != nil {
			errs = append(errs, err)
		}
	}
	if j.store != nil {
		deadline := time.Now().Add(cmp.Or(j.storageBudget, DefaultStorageBudget))
		st, err := storageusage.Measure(ctx, j.db, j.store, now, deadline, storageusage.Options{})
		res.Storage = &st
		if err != nil {
			errs = append(errs, fmt.Errorf("measure storage: %w", err))
		}
	}
	j.log.InfoContext(ctx, "usage", "days", res.Days, "reconcile", res.Reconcile, "storage", res.Storage)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return res, nil
}

// rolledThrough records day as the last final one (rolledThroughKey), if
// the record is still *mark, what this run read or last wrote (nil: there
// was none), and sets *mark to it. A record changed by someone else since —
// an operator setting it back to have days rolled up again, or another run
// — is left as it is, and rolledThrough reports false: this run records no
// more, and the next starts from that record.
func (j *job) rolledThrough(ctx context.Context, mark **string, day time.Time) (bool, error) {
	v := day.Format(time.DateOnly)
	if *mark != nil && **mark == v {
		return true, nil
	}
	var (
		res sql.Result
		err error
	)
	if *mark == nil {
		res, err = j.db.ExecContext(ctx, `INSERT IGNORE INTO system_config (config_key, config_value, config_type, description) VALUES (?, ?, 'string', ?)`,
			rolledThroughKey, v, "last UTC day whose AI usage totals are final (usage-cron); set it back to roll days up again")
	} else {
		res, err = j.db.ExecContext(ctx, "UPDATE system_config SET config_value = ? WHERE config_key = ? AND config_value <=> ?", v, rolledThroughKey, **mark)
	}
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return false, fmt.Errorf("record the days rolled up: %w", err)
	}
	if n == 0 {
		j.log.WarnContext(ctx, "the record of the days rolled up changed during the run; left as it is", "key", rolledThroughKey, "read", *mark, "day", v)
		return false, nil
	}
	*mark = &v
	return true, nil
}

// firstDay is the first day to roll up: yesterday, or the day after the
// last final one when that is earlier; and the record it read (nil: none).
// On an error it is yesterday (the run still rolls the usual days up, and
// fails).
func (j *job) firstDay(ctx context.Context, today time.Time) (time.Time, *string, error) {
	from := today.AddDate(0, 0, -1)
	var v string
	err := j.db.QueryRowContext(ctx, "SELECT config_value FROM system_config WHERE config_key = ?", rolledThroughKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return from, nil, nil // the first run: nothing before it to catch up
	}
	if err != nil {
		return from, nil, fmt.Errorf("read %s: %w", rolledThroughKey, err)
	}
	through, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return from, &v, fmt.Errorf("system_config %s = %q: want a date (YYYY-MM-DD)", rolledThroughKey, v)
	}
	if next := through.AddDate(0, 0, 1); next.Before(from) {
		from = next
	}
	return from, &v, nil
}
