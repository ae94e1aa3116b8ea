// Command storage is per-tenant object storage (/api/v1/oss/*): presigned
// upload and download URLs, temporary OSS credentials, listing and deleting,
// each confined to the caller's tenant prefix (tenants/<code>/ by default).
// With the local backend (development) it also serves the presigned URLs it
// hands out.
package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/tenancy"
)

func main() { serverless.Main("storage", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	objects, err := objectstore.Load(d.Env, d.Dev())
	if err != nil {
		return serverless.Service{}, err
	}
	public, err := publicURL(d.Env.String("PUBLIC_BASE_URL", ""))
	if err != nil {
		return serverless.Service{}, err
	}
	maxUpload := int64(d.Env.Int("STORAGE_MAX_UPLOAD_MB", 100, 1, objectstore.MaxPostSize>>20)) << 20
	localMax := int64(d.Env.Int("LOCAL_UPLOAD_MAX_MB", 64, 1, 1024)) << 20
	if objects.Local != nil {
		maxUpload = min(maxUpload, localMax) // a grant the local store could not take would mislead
	}
	f, err := tenancy.OpenFunction(d)
	if err != nil {
		return serverless.Service{}, err
	}
	return serverless.Service{
		Handler: newHandler(f.Verifier, f.Tenancy, f.DB, objects, options{publicURL: public, now: time.Now, maxUpload: maxUpload}, d.Log),
		Close:   f.Close,
		// Local presigned uploads come through this function (a form's
		// fields and boundaries on top of the file); OSS uploads go to OSS
		// directly and never reach it.
		MaxBody: localMax + formOverhead,
	}, nil
}

// formOverhead is room, beside the file, for a form upload's fields.
const formOverhead = 64 << 10

// publicURL parses PUBLIC_BASE_URL: scheme and host, nothing else.
func publicURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("PUBLIC_BASE_URL=%q: want scheme://host[:port]", s)
	}
	u.Path = ""
	return u, nil
}
