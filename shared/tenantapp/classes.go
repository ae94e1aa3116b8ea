package tenantapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Class grades and statuses, as the template's classes table allows them.
var (
	ClassGrades   = []string{"nursery", "small", "middle", "large", "preschool"}
	ClassStatuses = []string{"active", "graduated", "closed"}
)

// Class is a class of the tenant.
type Class struct {
	ID             int64     `json:"id"`
	KindergartenID int64     `json:"kindergartenId"`
	Name           string    `json:"name"`
	Grade          string    `json:"grade"`
	SchoolYear     string    `json:"schoolYear"`
	Capacity       int       `json:"capacity"`
	CurrentCount   int       `json:"currentCount"`
	Classroom      string    `json:"classroom"`
	Description    string    `json:"description"`
	SortOrder      int       `json:"sortOrder"`
	Status         string    `json:"status"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// ClassInput is the body of a create (name and grade required) or an
// update (only the fields present change; kindergartenId is fixed at
// creation).
type ClassInput struct {
	KindergartenID *int64  `json:"kindergartenId"`
	Name           *string `json:"name"`
	Grade          *string `json:"grade"`
	SchoolYear     *string `json:"schoolYear"`
	Capacity       *int    `json:"capacity"`
	Classroom      *string `json:"classroom"`
	Description    *string `json:"description"`
	SortOrder      *int    `json:"sortOrder"`
	Status         *string `json:"status"`
}

var schoolYearPattern = regexp.MustCompile(`^(\d{4})-(\d{4})$`)

// SchoolYear is the school year t falls in, e.g. "2025-2026": it starts in
// September.
func SchoolYear(t time.Time) string {
	y := t.Year()
	if t.Month() < time.September {
		y--
	}
	return fmt.Sprintf("%d-%d", y, y+1)
}

// validate checks in, trims its strings in place, and returns every problem.
func (in *ClassInput) validate(create bool) error {
	bad := problems{}
	if in.Name != nil || create {
		name := bad.text("name", deref(in.Name), true, 64)
		in.Name = &name
	}
	switch {
	case in.Grade != nil:
		bad.oneOf("grade", *in.Grade, ClassGrades...)
	case create:
		bad.add("grade", "is required")
	}
	if in.SchoolYear != nil {
		m := schoolYearPattern.FindStringSubmatch(*in.SchoolYear)
		if m == nil || atoi(m[2]) != atoi(m[1])+1 {
			bad.add("schoolYear", "must look like 2025-2026 (two consecutive years)")
		}
	}
	if in.Capacity != nil {
		bad.intRange("capacity", *in.Capacity, 1, 1000)
	}
	if in.Classroom != nil {
		*in.Classroom = bad.text("classroom", *in.Classroom, false, 64)
	}
	if in.Description != nil {
		*in.Description = bad.text("description", *in.Description, false, 512)
	}
	if in.SortOrder != nil {
		bad.intRange("sortOrder", *in.SortOrder, -1_000_000, 1_000_000)
	}
	if in.Status != nil {
		bad.oneOf("status", *in.Status, ClassStatuses...)
	}
	if in.KindergartenID != nil && (!create || *in.KindergartenID <= 0) {
		if create {
			bad.add("kindergartenId", "must be a positive integer")
		} else {
			bad.add("kindergartenId", "cannot be changed")
		}
	}
	if !create && in.empty() {
		return fault.New(fault.Invalid, "empty_update", "the body changes nothing: give at least one field")
	}
	return bad.err("invalid_field")
}

func (in *ClassInput) empty() bool {
	return in.Name == nil && in.Grade == nil && in.SchoolYear == nil && in.Capacity == nil && in.Classroom == nil &&
		in.Description == nil && in.SortOrder == nil && in.Status == nil && in.KindergartenID == nil
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

const classColumns = `id, kindergarten_id, name, grade, school_year, capacity, current_count, classroom, description, sort_order, status, created_at, updated_at`

func scanClass(s scanner) (Class, error) {
	var c Class
	err := s.Scan(&c.ID, &c.KindergartenID, &c.Name, &c.Grade, &c.SchoolYear, &c.Capacity, &c.CurrentCount,
		&c.Classroom, &c.Description, &c.SortOrder, &c.Status, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// GetClass returns class id, or not_found.
func GetClass(ctx context.Context, db DB, id int64) (Class, error) {
	c, err := scanClass(db.QueryRowContext(ctx, "SELECT "+classColumns+" FROM classes WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Class{}, notFound("class", id)
	}
	if err != nil {
		return Class{}, fmt.Errorf("get class %d: %w", id, err)
	}
	return c, nil
}

// ListClasses returns a page of the tenant's classes in display order.
func ListClasses(ctx context.Context, db DB, p Page) (List[Class], error) {
	return listRows(ctx, db, p, "classes", classColumns, "classes", "", "sort_order, id", scanClass)
}

// CreateClass adds a class. Without kindergartenId it goes to the tenant's
// first campus, which is created (named after the tenant) when the tenant
// has none yet; schoolYear defaults to the current one.
func CreateClass(ctx context.Context, db DB, in ClassInput, tenantName string, now time.Time) (Class, error) {
	if err := in.validate(true); err != nil {
		return Class{}, err
	}
	kgID, err := kindergartenFor(ctx, db, in.KindergartenID, tenantName)
	if err != nil {
		return Class{}, err
	}
	year := SchoolYear(now)
	if in.SchoolYear != nil {
		year = *in.SchoolYear
	}
	status := "active"
	if in.Status != nil {
		status = *in.Status
	}
	capacity := 30
	if in.Capacity != nil {
		capacity = *in.Capacity
	}
	res, err := db.ExecContext(ctx, `INSERT INTO classes (kindergarten_id, name, grade, school_year, capacity, classroom, description, sort_order, status)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		kgID, *in.Name, *in.Grade, year, capacity, deref(in.Classroom), deref(in.Description), deref(in.SortOrder), status)
	if err != nil {
		return Class{}, classWriteError(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Class{}, fmt.Errorf("create class: %w", err)
	}
	return GetClass(ctx, db, id)
}

// UpdateClass changes the fields of in that are set.
func UpdateClass(ctx context.Context, db DB, id int64, in ClassInput) (Class, error) {
	if err := in.validate(false); err != nil {
		return Class{}, err
	}
	if _, err := GetClass(ctx, db, id); err != nil {
		return Class{}, err
	}
	var a assignments
	assign(&a, "name", in.Name)
	assign(&a, "grade", in.Grade)
	assign(&a, "school_year", in.SchoolYear)
	assign(&a, "capacity", in.Capacity)
	assign(&a, "classroom", in.Classroom)
	assign(&a, "description", in.Description)
	assign(&a, "sort_order", in.SortOrder)
	assign(&a, "status", in.Status)
	if err := a.update(ctx, db, "classes", "id = ?", id); err != nil {
		return Class{}, classWriteError(err)
	}
	return GetClass(ctx, db, id)
}

// DeleteClass removes class id; its students stay, without a class.
func DeleteClass(ctx context.Context, db DB, id int64) error {
	res, err := db.ExecContext(ctx, "DELETE FROM classes WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete class %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("class", id)
	}
	return nil
}

func classWriteError(err error) error {
	if sqldb.IsDuplicate(err) {
		return fault.New(fault.Conflict, "class_name_taken", "a class with this name already exists in this campus and school year")
	}
	return fmt.Errorf("write class: %w", err)
}

// defaultKindergartenCode is the campus made for tenants that have none.
const defaultKindergartenCode = "main"

// kindergartenFor returns the campus a new row belongs to: the one asked
// for, which must exist, else the tenant's first campus, made on first use.
func kindergartenFor(ctx context.Context, db DB, asked *int64, tenantName string) (int64, error) {
	if asked != nil {
		var id int64
		err := db.QueryRowContext(ctx, "SELECT id FROM kindergartens WHERE id = ?", *asked).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fault.Field("invalid_field", "kindergartenId", "no such kindergarten")
		}
		if err != nil {
			return 0, fmt.Errorf("find kindergarten %d: %w", *asked, err)
		}
		return id, nil
	}
	var id int64
	err := db.QueryRowContext(ctx, "SELECT id FROM kindergartens ORDER BY id LIMIT 1").Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("find default kindergarten: %w", err)
	}
	// Two first requests may race here: the unique code makes one insert win.
	name := strings.TrimSpace(tenantName)
	if name == "" {
		name = defaultKindergartenCode
	}
	if _, err := db.ExecContext(ctx, "INSERT IGNORE INTO kindergartens (code, name) VALUES (?, ?)", defaultKindergartenCode, truncate(name, 128)); err != nil {
		return 0, fmt.Errorf("create default kindergarten: %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT id FROM kindergartens ORDER BY id LIMIT 1").Scan(&id); err != nil {
		return 0, fmt.Errorf("find default kindergarten: %w", err)
	}
	return id, nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}
