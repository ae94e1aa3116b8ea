package sms_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/sms"
)

func TestOutboxConcurrentAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "outbox", "sms.jsonl")
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ob := sms.NewOutbox(path, nil) // separate senders, as separate processes would be
			for i := range each {
				if err := ob.Send(context.Background(), fmt.Sprintf("138%08d", w), sms.PurposeLogin, fmt.Sprintf("%06d", i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m sms.OutboxMessage
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if m.Time.IsZero() || m.Purpose != sms.PurposeLogin {
			t.Fatalf("line %q: missing fields", sc.Text())
		}
		seen[m.Phone+"/"+m.Code] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct messages in the outbox, want %d", len(seen), writers*each)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("outbox mode %v, want 0600", st.Mode().Perm())
	}
}

// fakeDysms speaks dysmsapi's RPC wire format: form/query parameters in,
// a JSON body out.
func fakeDysms(t *testing.T, code string) (*httptest.Server, chan map[string]string) {
	got := make(chan map[string]string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		p := map[string]string{}
		for k := range r.Form {
			p[k] = r.Form.Get(k)
		}
		got <- p
		w.Header().Set("Content-Type", "application/json")
		if code == "OK" {
			fmt.Fprint(w, `{"Message":"OK","RequestId":"F655A8D5-B967-440B-8683-DAD6FF8DE990","BizId":"900619746936498440^0","Code":"OK"}`)
			return
		}
		fmt.Fprintf(w, `{"Message":"触发小时级流控Permits:5","RequestId":"A1","Code":%q}`, code)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func newAliyun(t *testing.T, endpoint string) *sms.Aliyun {
	t.Helper()
	a, err := sms.NewAliyun(sms.AliyunConfig{AccessKeyID: "LTAItestkey", AccessKeySecret: "test-secret",
		SignName: "unitenant", TemplateCode: "SMS_123456", Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAliyunSendSms(t *testing.T) {
	t.Parallel()
	srv, got := fakeDysms(t, "OK")
	if err := newAliyun(t, srv.URL).Send(context.Background(), "13800138000", sms.PurposeRegister, "042917"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	p := <-got
	want := map[string]string{
		"Action": "SendSms", "Version": "2017-05-25", "PhoneNumbers": "13800138000",
		"SignName": "unitenant", "TemplateCode": "SMS_123456", "TemplateParam": `{"code":"042917"}`,
		"AccessKeyId": "LTAItestkey", "SignatureMethod": "HMAC-SHA1", "Format": "JSON",
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	if p["Signature"] == "" || p["SignatureNonce"] == "" {
		t.Errorf("request is not signed: %v", p)
	}
}

func TestAliyunBusinessError(t *testing.T) {
	t.Parallel()
	srv, got := fakeDysms(t, "isv.BUSINESS_LIMIT_CONTROL")
	err := newAliyun(t, srv.URL).Send(context.Background(), "13800138000", sms.PurposeLogin, "042917")
	<-got
	if err == nil || !strings.Contains(err.Error(), "isv.BUSINESS_LIMIT_CONTROL") {
		t.Fatalf("Send = %v, want the provider's error code", err)
	}
	if strings.Contains(err.Error(), "042917") {
		t.Fatalf("error leaks the code: %v", err)
	}
}

func TestAliyunUnreachableDoesNotLeakTheCode(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := newAliyun(t, url).Send(context.Background(), "13800138000", sms.PurposeLogin, "042917")
	if err == nil || strings.Contains(err.Error(), "042917") || strings.Contains(err.Error(), "test-secret") {
		t.Fatalf("Send = %v, want an error without the code or secret", err)
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	aliyun := map[string]string{"ALIYUN_ACCESS_KEY_ID": "id", "ALIYUN_ACCESS_KEY_SECRET": "s",
		"SMS_SIGN_NAME": "n", "SMS_TEMPLATE_CODE": "t", "SMS_CODE_SECRET": strings.Repeat("k", 32)}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range aliyun {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		dev     bool
		sender  string
		wantErr string
	}{
		{"DevDefaultsToOutbox", map[string]string{}, true, "outbox", ""},
		{"ProdNeedsAliyun", map[string]string{"SMS_CODE_SECRET": strings.Repeat("k", 32)}, false, "", "ALIYUN_ACCESS_KEY_ID"},
		{"ProdRefusesOutbox", with(map[string]string{"SMS_SENDER": "outbox"}), false, "", "development only"},
		{"ProdNeedsCodeSecret", with(map[string]string{"SMS_CODE_SECRET": ""}), false, "", "SMS_CODE_SECRET"},
		{"ShortCodeSecret", with(map[string]string{"SMS_CODE_SECRET": "short"}), false, "", "at least 32"},
		{"ProdAliyun", aliyun, false, "aliyun", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := config.FromMap(tc.env)
			c, err := sms.LoadConfig(env, tc.dev, t.TempDir())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "kkkk") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil || env.Err() != nil {
				t.Fatalf("LoadConfig: %v / %v", err, env.Err())
			}
			if c.Sender != tc.sender || len(c.CodeKey) < 32 {
				t.Fatalf("sender %q key %d bytes", c.Sender, len(c.CodeKey))
			}
			if _, err := c.NewSender(); err != nil {
				t.Fatalf("NewSender: %v", err)
			}
		})
	}
}

func TestLoadConfigIPLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value   string
		want    int
		wantErr bool
	}{{"", sms.DefaultIPHourlyLimit, false}, {"5", 5, false}, {"0", -1, false}, {"-3", 0, true}, {"many", 0, true}} {
		env := config.FromMap(map[string]string{"SMS_IP_HOURLY_LIMIT": tc.value})
		if tc.value == "" {
			env = config.FromMap(map[string]string{})
		}
		c, err := sms.LoadConfig(env, true, t.TempDir())
		if err != nil {
			t.Fatalf("%q: %v", tc.value, err)
		}
		if tc.wantErr {
			if env.Err() == nil || !strings.Contains(env.Err().Error(), "SMS_IP_HOURLY_LIMIT") {
				t.Errorf("%q: env error %v, want one naming SMS_IP_HOURLY_LIMIT", tc.value, env.Err())
			}
			continue
		}
		if env.Err() != nil || c.Policy().IPHourlyLimit != tc.want {
			t.Errorf("%q: limit %d (%v), want %d", tc.value, c.Policy().IPHourlyLimit, env.Err(), tc.want)
		}
	}
}
