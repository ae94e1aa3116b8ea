package sms

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/unitenant/unitenant/shared/config"
)

// Config is the SMS part of a function's configuration.
type Config struct {
	Sender  string // "aliyun" or "outbox"
	Outbox  string // outbox file of the development sender
	Aliyun  AliyunConfig
	CodeKey []byte // HMAC key the stored code hashes are made with
	// IPHourlyLimit is Policy.IPHourlyLimit (negative: none).
	IPHourlyLimit int
}

// Policy is DefaultPolicy with the configured limits.
func (c Config) Policy() Policy {
	p := DefaultPolicy
	if c.IPHourlyLimit != 0 {
		p.IPHourlyLimit = c.IPHourlyLimit
	}
	return p
}

// LoadConfig reads:
//
//	SMS_SENDER                 aliyun | outbox (default outbox in development, aliyun otherwise)
//	SMS_OUTBOX                 the outbox file (default .dev/outbox/sms.jsonl)
//	SMS_CODE_SECRET            HMAC key of stored codes, at least 32 characters;
//	                           generated under devDir in development
//	SMS_IP_HOURLY_LIMIT        codes one client address may have sent an hour
//	                           (default 20; 0: no limit)
//	ALIYUN_ACCESS_KEY_ID, ALIYUN_ACCESS_KEY_SECRET, SMS_SIGN_NAME, SMS_TEMPLATE_CODE,
//	ALIYUN_SMS_REGION (cn-hangzhou), ALIYUN_SMS_ENDPOINT (https://dysmsapi.aliyuncs.com)
//
// Outside development it refuses the outbox (a code written to a function's
// disk reaches nobody) and an incomplete Aliyun configuration.
func LoadConfig(e *config.Env, devEnv bool, devDir string) (Config, error) {
	def := "aliyun"
	if devEnv {
		def = "outbox"
	}
	c := Config{
		Sender: e.OneOf("SMS_SENDER", def, "aliyun", "outbox"),
		Outbox: e.String("SMS_OUTBOX", DefaultOutbox),
		Aliyun: AliyunConfig{
			AccessKeyID:     e.String("ALIYUN_ACCESS_KEY_ID", ""),
			AccessKeySecret: e.Secret("ALIYUN_ACCESS_KEY_SECRET", ""),
			Region:          e.String("ALIYUN_SMS_REGION", "cn-hangzhou"),
			SignName:        e.String("SMS_SIGN_NAME", ""),
			TemplateCode:    e.String("SMS_TEMPLATE_CODE", ""),
			Endpoint:        e.String("ALIYUN_SMS_ENDPOINT", DefaultAliyunEndpoint),
		},
	}
	if c.IPHourlyLimit = e.Int("SMS_IP_HOURLY_LIMIT", DefaultIPHourlyLimit, 0, 1_000_000); c.IPHourlyLimit == 0 {
		c.IPHourlyLimit = -1
	}
	if !devEnv && c.Sender != "aliyun" {
		return c, errors.New("SMS_SENDER: outbox is for development only; configure aliyun")
	}
	if c.Sender == "aliyun" {
		if m := c.Aliyun.missing(); len(m) > 0 {
			return c, fmt.Errorf("SMS_SENDER=aliyun needs %v", m)
		}
	}
	if key := e.Secret("SMS_CODE_SECRET", ""); key != "" {
		if len(key) < 32 {
			return c, errors.New("SMS_CODE_SECRET: must be at least 32 characters")
		}
		c.CodeKey = []byte(key)
	} else if devEnv {
		key, err := config.DevSecret(devDir, "sms-code.key", func() ([]byte, error) {
			b := make([]byte, 32)
			_, err := rand.Read(b)
			return b, err
		})
		if err != nil {
			return c, fmt.Errorf("sms code key: %w", err)
		}
		c.CodeKey = key
	} else {
		return c, errors.New("SMS_CODE_SECRET must be set outside development")
	}
	return c, nil
}

// NewSender returns the configured sender.
func (c Config) NewSender() (Sender, error) {
	if c.Sender == "outbox" {
		return NewOutbox(c.Outbox, nil), nil
	}
	return NewAliyun(c.Aliyun)
}
