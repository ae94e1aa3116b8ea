package notify

import (
	"strings"
	"testing"
)

// What a receiver's URL keeps outside the admin API: never its token,
// whether in the query or in the path.
func TestRedactURLDropsTokensInPathAndQuery(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ raw, want, secret string }{
		{"https://hooks.example.com/unitenant/in", "https://hooks.example.com/unitenant/in", ""},
		{"https://hooks.example.com/unitenant/in/", "https://hooks.example.com/unitenant/in", ""},
		{"https://hooks.example.com", "https://hooks.example.com", ""},
		{"https://oapi.dingtalk.com/robot/send?access_token=3f2a9c", "https://oapi.dingtalk.com/robot/send?…", "3f2a9c"},
		{"https://open.feishu.cn/open-apis/bot/v2/hook/8d1c51a2-7b6f-4c2e-9a51-2f3e4d5c6b7a", "https://open.feishu.cn/open-apis/bot/…", "8d1c51a2"},
		{"https://hooks.slack.com/services/T0123ABCD/B0456EFGH/Xk29fLmQpRtYvWzAbCdEfGhI", "https://hooks.slack.com/services/…", "Xk29fLmQpRtYvWzAbCdEfGhI"},
		{"https://discord.com/api/webhooks/112233445566778899/aBcDeFgHiJkLmNoPqRsTuVwXyZ", "https://discord.com/api/webhooks/…", "aBcDeFgHiJkLmNoPqRsTuVwXyZ"},
		{"https://example.com/hooks/abcdefghijklmnopqrstuvwxyz/in", "https://example.com/hooks/…", "abcdefghijklmnopqrstuvwxyz"},
		{"https://example.com/hooks/%73ecret", "https://example.com/hooks/…", "73ecret"},
		{"https://user:pass@example.com/in", "https://example.com/in", "pass"},
	} {
		got := RedactURL(c.raw)
		if got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.raw, got, c.want)
		}
		if c.secret != "" && strings.Contains(got, c.secret) {
			t.Errorf("RedactURL(%q) = %q keeps %q", c.raw, got, c.secret)
		}
	}
}
