package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/logging"
)

// BenchmarkStandardStack is the cost every request pays before its handler:
// request id, access log, recovery, body limit, routing, JSON decode and
// envelope.
func BenchmarkStandardStack(b *testing.B) {
	rt := httpapi.NewRouter()
	rt.HandleFunc("POST /echo", echo)
	h := httpapi.Standard(rt, logging.Discard())
	body := `{"name":"kindergarten","count":3,"tags":["a","b"]}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/echo", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
