package objectstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/sts"
)

// STSConfig is what STS needs to hand out temporary OSS credentials.
type STSConfig struct {
	RoleARN         string // acs:ram::<account>:role/<name>, a role allowed to use the bucket
	Region          string // default cn-hangzhou
	Endpoint        string // default https://sts.<region>.aliyuncs.com; tests point it at a local server
	Duration        time.Duration
	AccessKeyID     string // a RAM user allowed to assume the role
	AccessKeySecret string
	Bucket          string
	Timeout         time.Duration // default 10s
}

// Limits of an STS session's lifetime (AssumeRole's DurationSeconds; the
// upper one also needs the role's own maximum raised).
const (
	MinSTSDuration = 15 * time.Minute
	MaxSTSDuration = 12 * time.Hour
)

// STS issues temporary OSS credentials limited to one prefix, by Aliyun STS
// AssumeRole with an inline policy: the session can do no more than both the
// role and the policy allow.
type STS struct {
	cfg    STSConfig
	scheme string // "HTTPS" or "HTTP", as the SDK spells it
	host   string
}

// rolePattern is the shape of a RAM role ARN.
var rolePattern = regexp.MustCompile(`^acs:ram::\d+:role/[A-Za-z0-9._-]{1,64}$`)

// initEndpoints fills the SDK's package-level endpoint table, which the SDK
// fills lazily and unsynchronised on every new client: once filled it is
// only read, so clients may then be made concurrently.
var initEndpoints = sync.OnceFunc(func() { sts.GetEndpointMap() })

// NewSTS returns an STS client, or an error naming what cfg lacks.
func NewSTS(cfg STSConfig) (*STS, error) {
	initEndpoints()
	if !rolePattern.MatchString(cfg.RoleARN) {
		return nil, fmt.Errorf("sts: role ARN %q: want acs:ram::<account id>:role/<name>", cfg.RoleARN)
	}
	if cfg.AccessKeyID == "" || cfg.AccessKeySecret == "" {
		return nil, errors.New("sts: an access key (OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET) is required to assume the role")
	}
	if !bucketPattern.MatchString(cfg.Bucket) {
		return nil, fmt.Errorf("sts: bucket %q is not a bucket name", cfg.Bucket)
	}
	if cfg.Region == "" {
		cfg.Region = "cn-hangzhou"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "https://sts." + cfg.Region + ".aliyuncs.com"
	}
	if cfg.Duration == 0 {
		cfg.Duration = time.Hour
	}
	if cfg.Duration < MinSTSDuration || cfg.Duration > MaxSTSDuration {
		return nil, fmt.Errorf("sts: duration %s: want between %s and %s", cfg.Duration, MinSTSDuration, MaxSTSDuration)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	scheme, host, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("sts: %w", err)
	}
	return &STS{cfg: cfg, scheme: strings.ToUpper(scheme), host: host}, nil
}

// Credentials are temporary credentials. They are secrets: hand them to
// their owner, never log them.
type Credentials struct {
	AccessKeyID     string    `json:"accessKeyId"`
	AccessKeySecret string    `json:"accessKeySecret"`
	SecurityToken   string    `json:"securityToken"`
	Expiration      time.Time `json:"expiration"`
}

// sessionPattern is what AssumeRole accepts as a session name.
var sessionPattern = regexp.MustCompile(`^[A-Za-z0-9.@_-]{2,64}$`)

// AssumeRole returns credentials that reach only prefix of the bucket, with
// access (see PrefixPolicy). sessionName shows in the bucket's access logs
// (say "k001-u42"). The SDK takes no context: a cancelled ctx abandons the
// call.
func (s *STS) AssumeRole(ctx context.Context, sessionName, prefix string, access Access) (Credentials, error) {
	if !sessionPattern.MatchString(sessionName) {
		return Credentials{}, fmt.Errorf("sts: session name %q: want 2-64 letters, digits, . @ _ -", sessionName)
	}
	policy, err := PrefixPolicy(s.cfg.Bucket, prefix, access)
	if err != nil {
		return Credentials{}, err
	}
	client, err := sts.NewClientWithOptions(s.cfg.Region,
		sdk.NewConfig().WithTimeout(s.cfg.Timeout).WithScheme(s.scheme),
		credentials.NewAccessKeyCredential(s.cfg.AccessKeyID, s.cfg.AccessKeySecret))
	if err != nil {
		return Credentials{}, fmt.Errorf("sts client: %w", err)
	}
	req := sts.CreateAssumeRoleRequest()
	req.Scheme = s.scheme
	req.Domain = s.host
	req.RoleArn = s.cfg.RoleARN
	req.RoleSessionName = sessionName
	req.Policy = policy
	req.DurationSeconds = requests.NewInteger(int(s.cfg.Duration / time.Second))

	type result struct {
		resp *sts.AssumeRoleResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.AssumeRole(req)
		done <- result{resp, err}
	}()
	var res result
	select {
	case <-ctx.Done():
		return Credentials{}, fmt.Errorf("sts assume role: %w", ctx.Err())
	case res = <-done:
	}
	if res.err != nil {
		return Credentials{}, fmt.Errorf("sts assume role: %w", stsError(res.err))
	}
	c := res.resp.Credentials
	exp, err := time.Parse(time.RFC3339, c.Expiration)
	if err != nil || c.AccessKeyId == "" || c.AccessKeySecret == "" || c.SecurityToken == "" {
		return Credentials{}, fmt.Errorf("sts assume role: incomplete credentials in the answer (request %s)", res.resp.RequestId)
	}
	return Credentials{AccessKeyID: c.AccessKeyId, AccessKeySecret: c.AccessKeySecret, SecurityToken: c.SecurityToken, Expiration: exp}, nil
}

// stsError keeps Aliyun's error code and message and drops the SDK's
// wrapped transport error, whose text can hold the signed request URL.
func stsError(err error) error {
	if se, ok := errors.AsType[*sdkerrors.ServerError](err); ok {
		return fmt.Errorf("%s: %s (HTTP %d, request %s)", se.ErrorCode(), se.Message(), se.HttpStatus(), se.RequestId())
	}
	if ce, ok := errors.AsType[*sdkerrors.ClientError](err); ok {
		return fmt.Errorf("client error %s", ce.ErrorCode())
	}
	return errors.New("request failed")
}

// Policy is a RAM policy document.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a RAM policy.
type Statement struct {
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// Access is what an STS session may do with the objects under its prefix.
type Access int

const (
	// AccessUpload reads and lists every object of the prefix and uploads
	// objects whose key ends in one of UploadExtensions: a tenant's members.
	AccessUpload Access = iota + 1
	// AccessManage is AccessUpload and deleting any object of the prefix:
	// the tenant's owners and admins.
	AccessManage
)

// UploadExtensions are the key endings an STS session may upload: pictures,
// documents, audio, video and archives, types browsers do not run as a page
// or script of the origin serving them, which every tenant's links share.
// OSS types an object sent without a Content-Type by its key's extension,
// so a session cannot store .html, .svg, .js and the like as such. A
// Content-Type the client does send is not checked (no RAM condition covers
// it; presign checks it): the extension is all a policy can hold an upload
// to.
//
// Lower case only: OSS keys, and RAM's matching of policy resources against
// them, are case-sensitive, and listing upper-case variants too would not
// fit MaxPolicyLen. Clients lower-case the extension (IMG_0001.JPG is
// uploaded as IMG_0001.jpg); presigned uploads take any case.
var UploadExtensions = []string{
	".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic",
	".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".txt", ".csv",
	".mp3", ".m4a", ".wav", ".mp4", ".mov",
	".zip",
}

// MaxPolicyLen is the longest inline policy AssumeRole takes, in characters.
const MaxPolicyLen = 2048

// ErrPolicyTooLong is PrefixPolicy's error for a bucket and prefix whose
// policy STS would refuse: each upload extension is a resource naming both.
var ErrPolicyTooLong = fmt.Errorf("policy: longer than the %d characters STS takes", MaxPolicyLen)

// PrefixPolicy returns the inline policy of a tenant's STS session: read
// the objects under prefix, upload objects under it whose key ends in one of
// UploadExtensions (one resource each: RAM matches * anywhere in a
// resource), delete them with AccessManage, and list the bucket only with
// an oss:Prefix inside prefix. ListObjects is an operation on the bucket, so
// its resource is the bucket and the prefix is a condition.
func PrefixPolicy(bucket, prefix string, access Access) (string, error) {
	if !bucketPattern.MatchString(bucket) {
		return "", fmt.Errorf("policy: bucket %q is not a bucket name", bucket)
	}
	if prefix == "" || !strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "*?$") || checkKey("prefix", prefix, true) != nil {
		return "", fmt.Errorf("policy: prefix %q: want a key prefix ending in / without wildcards", prefix)
	}
	objects := "acs:oss:*:*:" + bucket + "/" + prefix
	read := Statement{Effect: "Allow", Action: []string{"oss:GetObject"}, Resource: []string{objects + "*"}}
	switch access {
	case AccessUpload:
	case AccessManage:
		read.Action = append(read.Action, "oss:DeleteObject")
	default:
		return "", fmt.Errorf("policy: unknown access %d", access)
	}
	upload := Statement{Effect: "Allow", Action: []string{"oss:PutObject"}}
	for _, ext := range UploadExtensions {
		upload.Resource = append(upload.Resource, objects+"*"+ext)
	}
	p := Policy{Version: "1", Statement: []Statement{
		read,
		upload,
		{
			Effect:    "Allow",
			Action:    []string{"oss:ListObjects"},
			Resource:  []string{"acs:oss:*:*:" + bucket},
			Condition: map[string]map[string][]string{"StringLike": {"oss:Prefix": {prefix + "*"}}},
		},
	}}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("policy: %w", err)
	}
	if len(b) > MaxPolicyLen {
		return "", fmt.Errorf("%w: %d for bucket %s and prefix %s (a shorter bucket name or prefix fits)", ErrPolicyTooLong, len(b), bucket, prefix)
	}
	return string(b), nil
}
