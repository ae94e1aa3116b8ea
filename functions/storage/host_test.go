package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/serverless"
)

// TestLocalURLsOnTheServedHost: the local store's presigned URLs point at
// the host and port the request was served for, the one routing trusts, on
// every platform — never at a Host header a client added beside it (which
// Go's HTTP/2 server keeps in r.Header next to :authority, and API Gateway
// forwards as the event's "host" header).
func TestLocalURLsOnTheServedHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	body := `{"op":"put","key":"uploads/a.png","contentType":"image/png"}`
	urlOf := func(t *testing.T, status int, raw []byte) *url.URL {
		t.Helper()
		resp := httpapitest.Parse(t, status, nil, raw)
		want(t, resp, 200, "")
		u, err := url.Parse(httpapitest.Data[presignOutput](t, resp).URL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Path != objectstore.LocalURLPath+"/put" {
			t.Fatalf("url %s", u)
		}
		return u
	}
	for _, tc := range []struct {
		name       string
		get        func(t *testing.T) (int, []byte)
		wantScheme string
		wantHost   string
	}{
		{"HTTP1", func(t *testing.T) (int, []byte) {
			resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", json.RawMessage(body))
			return resp.Status, resp.Raw
		}, "http", "k001.localhost:" + f.port},
		// A server hands the routes a request whose r.Host is the authority
		// and whose header map still holds the client's own "Host" (Go's
		// HTTP/2 server does): the header is not where the port comes from.
		{"LiteralHostHeader", func(t *testing.T) (int, []byte) {
			r := httptest.NewRequest("POST", "/api/v1/oss/presign", strings.NewReader(body))
			r.Host = "k001.localhost:8443"
			r.Header.Set("Host", "k001.localhost:1")
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+f.token(t, "k001"))
			w := httptest.NewRecorder()
			f.handler.ServeHTTP(w, r)
			return w.Code, w.Body.Bytes()
		}, "http", "k001.localhost:8443"},
		{"LambdaHTTPAPI", func(t *testing.T) (int, []byte) {
			proxy := serverless.HTTPLambdaHandler(f.handler, logging.Discard(), 0).(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error))
			resp, err := proxy(context.Background(), events.APIGatewayV2HTTPRequest{
				Version: "2.0", RouteKey: "POST /api/v1/oss/presign", RawPath: "/api/v1/oss/presign", Body: body,
				Headers: map[string]string{"host": "k001.localhost:9999", "content-type": "application/json",
					"authorization": "Bearer " + f.token(t, "k001"), "x-forwarded-proto": "https", "x-forwarded-port": "443"},
				RequestContext: events.APIGatewayV2HTTPRequestContext{DomainName: "k001.localhost", RequestID: "gw-1",
					HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/api/v1/oss/presign", SourceIP: "203.0.113.1"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, []byte(resp.Body)
		}, "https", "k001.localhost"},
		{"LambdaFunctionURL", func(t *testing.T) (int, []byte) {
			h := lambdaurl.Wrap(serverless.Handler(f.handler, logging.Discard(), 0))
			resp, err := h(context.Background(), &events.LambdaFunctionURLRequest{
				RawPath: "/api/v1/oss/presign", Body: body,
				Headers: map[string]string{"host": "k001.localhost:9999", "content-type": "application/json",
					"authorization": "Bearer " + f.token(t, "k001"), "x-forwarded-proto": "https"},
				RequestContext: events.LambdaFunctionURLRequestContext{DomainName: "k001.localhost",
					HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "POST", Path: "/api/v1/oss/presign", SourceIP: "203.0.113.1"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}, "https", "k001.localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := tc.get(t)
			if u := urlOf(t, status, raw); u.Scheme != tc.wantScheme || u.Host != tc.wantHost {
				t.Errorf("presigned URL on %s://%s, want %s://%s", u.Scheme, u.Host, tc.wantScheme, tc.wantHost)
			}
		})
	}
}
