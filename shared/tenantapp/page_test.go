package tenantapp_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

func TestParsePage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query  string
		want   tenantapp.Page
		fields []string // named by the error, nil when valid
	}{
		{"", tenantapp.Page{Number: 1, Size: 20}, nil},
		{"page=3&pageSize=100", tenantapp.Page{Number: 3, Size: 100}, nil},
		{"page=0", tenantapp.Page{}, []string{"page"}},
		{"page=-1&pageSize=0", tenantapp.Page{}, []string{"page", "pageSize"}},
		{"pageSize=101", tenantapp.Page{}, []string{"pageSize"}},
		{"page=1.5", tenantapp.Page{}, []string{"page"}},
		{"page=", tenantapp.Page{}, []string{"page"}},
		{"page=1&page=2", tenantapp.Page{}, []string{"page"}},
		{"page=99999999999999999999", tenantapp.Page{}, []string{"page"}},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := tenantapp.ParsePage(q)
		if tt.fields == nil {
			if err != nil || got != tt.want {
				t.Errorf("%q: got %+v, %v; want %+v", tt.query, got, err, tt.want)
			}
			continue
		}
		fe, ok := fault.As(err)
		if !ok || fe.Kind != fault.Invalid || fe.Code != "invalid_query" || len(fe.Fields) != len(tt.fields) {
			t.Errorf("%q: got %v, want invalid_query naming %v", tt.query, err, tt.fields)
			continue
		}
		for _, f := range tt.fields {
			if _, ok := fe.Fields[f]; !ok {
				t.Errorf("%q: error %v does not name %s", tt.query, err, f)
			}
		}
	}
}

func TestSchoolYear(t *testing.T) {
	t.Parallel()
	for date, want := range map[string]string{
		"2025-08-31": "2024-2025",
		"2025-09-01": "2025-2026",
		"2026-01-15": "2025-2026",
	} {
		d, _ := time.Parse("2006-01-02", date)
		if got := tenantapp.SchoolYear(d); got != want {
			t.Errorf("SchoolYear(%s) = %s, want %s", date, got, want)
		}
	}
}
