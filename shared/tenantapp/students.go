package tenantapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Student genders and statuses, as the template's students table allows them.
var (
	StudentGenders  = []string{"unknown", "male", "female"}
	StudentStatuses = []string{"pending", "enrolled", "on_leave", "graduated", "withdrawn"}
)

// dateLayout is how dates travel in JSON.
const dateLayout = "2006-01-02"

// Student is a child of the tenant.
type Student struct {
	ID             int64     `json:"id"`
	KindergartenID int64     `json:"kindergartenId"`
	ClassID        *int64    `json:"classId"`
	StudentNo      *string   `json:"studentNo"`
	Name           string    `json:"name"`
	EnglishName    string    `json:"englishName"`
	Gender         string    `json:"gender"`
	BirthDate      *string   `json:"birthDate"`
	EnrollmentDate *string   `json:"enrollmentDate"`
	Status         string    `json:"status"`
	Allergies      string    `json:"allergies"`
	Remark         string    `json:"remark"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// StudentInput is the body of a create (name required) or an update (only
// the fields present change; null clears classId, studentNo and the dates).
type StudentInput struct {
	ClassID        Opt[int64]  `json:"classId"`
	StudentNo      Opt[string] `json:"studentNo"`
	Name           *string     `json:"name"`
	EnglishName    *string     `json:"englishName"`
	Gender         *string     `json:"gender"`
	BirthDate      Opt[string] `json:"birthDate"`
	EnrollmentDate Opt[string] `json:"enrollmentDate"`
	Status         *string     `json:"status"`
	Allergies      *string     `json:"allergies"`
	Remark         *string     `json:"remark"`
}

func (in *StudentInput) validate(create bool) error {
	if !create && !in.ClassID.Set && !in.StudentNo.Set && in.Name == nil && in.EnglishName == nil && in.Gender == nil &&
		!in.BirthDate.Set && !in.EnrollmentDate.Set && in.Status == nil && in.Allergies == nil && in.Remark == nil {
		return fault.New(fault.Invalid, "empty_update", "the body changes nothing: give at least one field")
	}
	bad := problems{}
	if in.Name != nil || create {
		name := bad.text("name", deref(in.Name), true, 64)
		in.Name = &name
	}
	if in.ClassID.Set && !in.ClassID.Null && in.ClassID.Value <= 0 {
		bad.add("classId", "must be a positive integer or null")
	}
	if in.StudentNo.Set && !in.StudentNo.Null {
		in.StudentNo.Value = bad.text("studentNo", in.StudentNo.Value, true, 32)
	}
	if in.EnglishName != nil {
		*in.EnglishName = bad.text("englishName", *in.EnglishName, false, 64)
	}
	if in.Gender != nil {
		bad.oneOf("gender", *in.Gender, StudentGenders...)
	}
	bad.date("birthDate", in.BirthDate)
	bad.date("enrollmentDate", in.EnrollmentDate)
	if in.Status != nil {
		bad.oneOf("status", *in.Status, StudentStatuses...)
	}
	if in.Allergies != nil {
		*in.Allergies = bad.text("allergies", *in.Allergies, false, 512)
	}
	if in.Remark != nil {
		*in.Remark = bad.text("remark", *in.Remark, false, 512)
	}
	return bad.err("invalid_field")
}

// date checks an optional YYYY-MM-DD field.
func (p problems) date(field string, v Opt[string]) {
	if !v.Set || v.Null {
		return
	}
	d, err := time.Parse(dateLayout, v.Value)
	if err != nil || d.Year() < 1900 || d.Year() > 2999 {
		p.add(field, "must be a date like 2021-09-01")
	}
}

// nullable is the SQL value of an optional field: NULL when absent or null.
func nullable[T any](o Opt[T]) any {
	if !o.Set || o.Null {
		return nil
	}
	return o.Value
}

const studentColumns = `id, kindergarten_id, class_id, student_no, name, english_name, gender,
	DATE_FORMAT(birth_date, '%Y-%m-%d'), DATE_FORMAT(enrollment_date, '%Y-%m-%d'), status, allergies, remark, created_at, updated_at`

func scanStudent(s scanner) (Student, error) {
	var st Student
	var class sql.NullInt64
	var no, birth, enrolled sql.NullString
	err := s.Scan(&st.ID, &st.KindergartenID, &class, &no, &st.Name, &st.EnglishName, &st.Gender,
		&birth, &enrolled, &st.Status, &st.Allergies, &st.Remark, &st.CreatedAt, &st.UpdatedAt)
	if class.Valid {
		st.ClassID = &class.Int64
	}
	st.StudentNo, st.BirthDate, st.EnrollmentDate = nullString(no), nullString(birth), nullString(enrolled)
	return st, err
}

func nullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// GetStudent returns student id (not deleted), or not_found.
func GetStudent(ctx context.Context, db DB, id int64) (Student, error) {
	st, err := scanStudent(db.QueryRowContext(ctx, "SELECT "+studentColumns+" FROM students WHERE id = ? AND deleted_at IS NULL", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Student{}, notFound("student", id)
	}
	if err != nil {
		return Student{}, fmt.Errorf("get student %d: %w", id, err)
	}
	return st, nil
}

// ListStudents returns a page of the tenant's students, of one class when
// classID is not nil.
func ListStudents(ctx context.Context, db DB, p Page, classID *int64) (List[Student], error) {
	if classID != nil {
		return listRows(ctx, db, p, "students", studentColumns, "students", "deleted_at IS NULL AND class_id = ?", "id", scanStudent, *classID)
	}
	return listRows(ctx, db, p, "students", studentColumns, "students", "deleted_at IS NULL", "id", scanStudent)
}

// CreateStudent adds a student, in the campus of its class (or the tenant's
// first campus when it has none).
func CreateStudent(ctx context.Context, db DB, in StudentInput, tenantName string) (Student, error) {
	if err := in.validate(true); err != nil {
		return Student{}, err
	}
	var kgID int64
	var err error
	if in.ClassID.Set && !in.ClassID.Null {
		kgID, err = classKindergarten(ctx, db, in.ClassID.Value)
	} else {
		kgID, err = kindergartenFor(ctx, db, nil, tenantName)
	}
	if err != nil {
		return Student{}, err
	}
	gender, status := "unknown", "enrolled"
	if in.Gender != nil {
		gender = *in.Gender
	}
	if in.Status != nil {
		status = *in.Status
	}
	res, err := db.ExecContext(ctx, `INSERT INTO students (kindergarten_id, class_id, student_no, name, english_name, gender,
		birth_date, enrollment_date, status, allergies, remark) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		kgID, nullable(in.ClassID), nullable(in.StudentNo), *in.Name, deref(in.EnglishName), gender,
		nullable(in.BirthDate), nullable(in.EnrollmentDate), status, deref(in.Allergies), deref(in.Remark))
	if err != nil {
		return Student{}, studentWriteError(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Student{}, fmt.Errorf("create student: %w", err)
	}
	if err := recountClasses(ctx, db, classOf(in)); err != nil {
		return Student{}, err
	}
	return GetStudent(ctx, db, id)
}

// UpdateStudent changes the fields of in that are set. Moving a student to
// a class moves it to that class's campus.
func UpdateStudent(ctx context.Context, db DB, id int64, in StudentInput) (Student, error) {
	if err := in.validate(false); err != nil {
		return Student{}, err
	}
	old, err := GetStudent(ctx, db, id)
	if err != nil {
		return Student{}, err
	}
	var a assignments
	if kg := classOf(in); kg != nil {
		kgID, err := classKindergarten(ctx, db, *kg)
		if err != nil {
			return Student{}, err
		}
		a.add("kindergarten_id", kgID)
	}
	assignOpt(&a, "class_id", in.ClassID)
	assignOpt(&a, "student_no", in.StudentNo)
	assign(&a, "name", in.Name)
	assign(&a, "english_name", in.EnglishName)
	assign(&a, "gender", in.Gender)
	assignOpt(&a, "birth_date", in.BirthDate)
	assignOpt(&a, "enrollment_date", in.EnrollmentDate)
	assign(&a, "status", in.Status)
	assign(&a, "allergies", in.Allergies)
	assign(&a, "remark", in.Remark)
	if err := a.update(ctx, db, "students", "id = ? AND deleted_at IS NULL", id); err != nil {
		return Student{}, studentWriteError(err)
	}
	if in.ClassID.Set {
		if err := recountClasses(ctx, db, old.ClassID, classOf(in)); err != nil {
			return Student{}, err
		}
	}
	return GetStudent(ctx, db, id)
}

// DeleteStudent soft-deletes student id (the template keeps deleted_at).
func DeleteStudent(ctx context.Context, db DB, id int64) error {
	old, err := GetStudent(ctx, db, id)
	if err != nil {
		return err
	}
	res, err := db.ExecContext(ctx, "UPDATE students SET deleted_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND deleted_at IS NULL", id)
	if err != nil {
		return fmt.Errorf("delete student %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("student", id)
	}
	return recountClasses(ctx, db, old.ClassID)
}

// classKindergarten returns the campus of class id, which must exist.
func classKindergarten(ctx context.Context, db DB, id int64) (int64, error) {
	var kg int64
	err := db.QueryRowContext(ctx, "SELECT kindergarten_id FROM classes WHERE id = ?", id).Scan(&kg)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fault.Field("invalid_field", "classId", "no such class")
	}
	if err != nil {
		return 0, fmt.Errorf("find class %d: %w", id, err)
	}
	return kg, nil
}

// recountClasses sets current_count of the given classes (nil entries and
// nil pointers are skipped) from their students. Counting, not
// incrementing, so any later write repairs a count a failure left stale.
func recountClasses(ctx context.Context, db DB, ids ...*int64) error {
	for _, id := range ids {
		if id == nil {
			continue
		}
		if _, err := db.ExecContext(ctx, `UPDATE classes SET current_count =
			(SELECT COUNT(*) FROM students WHERE class_id = ? AND deleted_at IS NULL) WHERE id = ?`, *id, *id); err != nil {
			return fmt.Errorf("recount class %d: %w", *id, err)
		}
	}
	return nil
}

// classOf is the class an input assigns, nil when it assigns none.
func classOf(in StudentInput) *int64 {
	if !in.ClassID.Set || in.ClassID.Null {
		return nil
	}
	return &in.ClassID.Value
}

func studentWriteError(err error) error {
	switch {
	case sqldb.IsDuplicate(err):
		return &fault.Error{Kind: fault.Conflict, Code: "student_no_taken", Message: "studentNo: is already used by another student",
			Fields: map[string]string{"studentNo": "is already used by another student"}}
	case isForeignKeyMissing(err):
		return fault.Field("invalid_field", "classId", "no such class")
	}
	return fmt.Errorf("write student: %w", err)
}
