package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dysmsapi"
)

// DefaultAliyunEndpoint is dysmsapi's public endpoint.
const DefaultAliyunEndpoint = "https://dysmsapi.aliyuncs.com"

// AliyunConfig is what the Aliyun sender needs. Endpoint is a URL
// (scheme://host[:port]); tests point it at a local server.
type AliyunConfig struct {
	AccessKeyID     string
	AccessKeySecret string
	Region          string
	SignName        string
	TemplateCode    string // a template with one variable, ${code}
	Endpoint        string
	Timeout         time.Duration
}

// missing names the variables a usable configuration lacks.
func (c AliyunConfig) missing() []string {
	var out []string
	for _, f := range []struct{ name, v string }{
		{"ALIYUN_ACCESS_KEY_ID", c.AccessKeyID},
		{"ALIYUN_ACCESS_KEY_SECRET", c.AccessKeySecret},
		{"SMS_SIGN_NAME", c.SignName},
		{"SMS_TEMPLATE_CODE", c.TemplateCode},
	} {
		if f.v == "" {
			out = append(out, f.name)
		}
	}
	return out
}

// Aliyun sends codes with Aliyun SMS (dysmsapi SendSms).
type Aliyun struct {
	cfg    AliyunConfig
	scheme string // "HTTPS" or "HTTP"
	host   string
}

// NewAliyun returns an Aliyun sender, or an error naming what cfg lacks.
func NewAliyun(cfg AliyunConfig) (*Aliyun, error) {
	if m := cfg.missing(); len(m) > 0 {
		return nil, fmt.Errorf("aliyun sms: %s must be set", strings.Join(m, ", "))
	}
	if cfg.Region == "" {
		cfg.Region = "cn-hangzhou"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultAliyunEndpoint
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	scheme, host, ok := strings.Cut(cfg.Endpoint, "://")
	if !ok || host == "" || strings.ContainsAny(host, "/?#") || (scheme != "https" && scheme != "http") {
		return nil, fmt.Errorf("aliyun sms: endpoint %q: want https://host[:port]", cfg.Endpoint)
	}
	return &Aliyun{cfg: cfg, scheme: strings.ToUpper(scheme), host: host}, nil
}

// aliyunResult is what one SendSms call ended with.
type aliyunResult struct {
	resp *dysmsapi.SendSmsResponse
	err  error
}

// Send calls SendSms with the code as the template's "code" variable. The SDK
// takes no context, so a cancelled ctx abandons the call rather than stopping
// it. Errors carry Aliyun's code and message, never the request (it holds
// the verification code).
func (a *Aliyun) Send(ctx context.Context, phone string, purpose Purpose, code string) error {
	// A client per call: the SDK mutates its client's timeouts and transport
	// on every request, which is not safe for concurrent use; SMS volume is
	// low enough that connection reuse does not matter. No auto retry: a
	// retried SendSms can deliver the message twice.
	client, err := dysmsapi.NewClientWithOptions(a.cfg.Region,
		sdk.NewConfig().WithAutoRetry(false).WithTimeout(a.cfg.Timeout).WithScheme(a.scheme),
		credentials.NewAccessKeyCredential(a.cfg.AccessKeyID, a.cfg.AccessKeySecret))
	if err != nil {
		return fmt.Errorf("aliyun sms client: %w", err)
	}
	param, _ := json.Marshal(map[string]string{"code": code})
	req := dysmsapi.CreateSendSmsRequest()
	req.Scheme = a.scheme
	req.Domain = a.host
	req.PhoneNumbers = phone
	req.SignName = a.cfg.SignName
	req.TemplateCode = a.cfg.TemplateCode
	req.TemplateParam = string(param)
	req.OutId = string(purpose)

	done := make(chan aliyunResult, 1)
	go func() {
		resp, err := client.SendSms(req)
		done <- aliyunResult{resp, err}
	}()
	var res aliyunResult
	select {
	case <-ctx.Done():
		return fmt.Errorf("aliyun sms: %w", ctx.Err())
	case res = <-done:
	}
	if res.err != nil {
		return fmt.Errorf("aliyun sms: %w", sanitize(res.err))
	}
	if res.resp.Code != "OK" {
		return fmt.Errorf("aliyun sms: %s: %s (request %s)", res.resp.Code, res.resp.Message, res.resp.RequestId)
	}
	return nil
}

// sanitize keeps the SDK error's code and message and drops the wrapped
// transport error, whose text can include the request URL.
func sanitize(err error) error {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %s (HTTP %d, request %s)", se.ErrorCode(), se.Message(), se.HttpStatus(), se.RequestId())
	}
	var ce *sdkerrors.ClientError
	if errors.As(err, &ce) {
		return fmt.Errorf("client error %s", ce.ErrorCode())
	}
	return errors.New("request failed")
}
