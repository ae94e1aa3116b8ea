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

// AssumeRole returns credentials that reach only prefix of the bucket (see
// PrefixPolicy). sessionName shows in the bucket's access logs (say
// "k001-u42"). The SDK takes no context: a cancelled ctx abandons the call.
func (s *STS) AssumeRole(ctx context.Context, sessionName, prefix string) (Credentials, error) {
	if !sessionPattern.MatchString(sessionName) {
		return Credentials{}, fmt.Errorf("sts: session name %q: want 2-64 letters, digits, . @ _ -", sessionName)
	}
	policy, err := PrefixPolicy(s.cfg.Bucket, prefix)
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

// PrefixPolicy returns the inline policy of a tenant's STS session: read,
// write and delete the objects under prefix, and list the bucket only with
// an oss:Prefix inside it. ListObjects is an operation on the bucket, so its
// resource is the bucket and the prefix is a condition.
func PrefixPolicy(bucket, prefix string) (string, error) {
	if !bucketPattern.MatchString(bucket) {
		return "", fmt.Errorf("policy: bucket %q is not a bucket name", bucket)
	}
	if prefix == "" || !strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "*?$") || checkKey("prefix", prefix, true) != nil {
		return "", fmt.Errorf("policy: prefix %q: want a key prefix ending in / without wildcards", prefix)
	}
	p := Policy{Version: "1", Statement: []Statement{
		{
			Effect:   "Allow",
			Action:   []string{"oss:GetObject", "oss:PutObject", "oss:DeleteObject"},
			Resource: []string{"acs:oss:*:*:" + bucket + "/" + prefix + "*"},
		},
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
	return string(b), nil
}
