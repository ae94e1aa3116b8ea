package aiprovider_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/unitenant/unitenant/shared/aiprovider"
)

func TestChatRequestRoundTrip(t *testing.T) {
	t.Parallel()
	in := `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}],"name":"kid"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}],"refusal":null},` +
		`{"role":"tool","content":"42","tool_call_id":"c1"}],` +
		`"temperature":0.2,"top_p":0.9,"max_tokens":5,"stream":true,"stream_options":{"include_usage":true},"stop":"END","user":"u1",` +
		`"tools":[{"type":"function","function":{"name":"f"}}],"seed":3,"logit_bias":{"1":2}}`
	var req aiprovider.ChatRequest
	if err := json.Unmarshal([]byte(in), &req); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	_ = json.Unmarshal([]byte(in), &want)
	_ = json.Unmarshal(out, &got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got := req.Messages[0].Content.Text(); got != "a" {
		t.Errorf("Text() = %q", got)
	}
	if !req.Stop.Single || req.Stop.Values[0] != "END" {
		t.Errorf("stop = %+v", req.Stop)
	}
}

func TestStrings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want aiprovider.Strings
		out  string
	}{
		{`"a"`, aiprovider.OneString("a"), `"a"`},
		{`["a","b"]`, aiprovider.Strings{Values: []string{"a", "b"}}, `["a","b"]`},
		{`["a"]`, aiprovider.Strings{Values: []string{"a"}}, `["a"]`},
	} {
		var s aiprovider.Strings
		if err := json.Unmarshal([]byte(tc.in), &s); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, s); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.in, diff)
		}
		if b, _ := json.Marshal(s); string(b) != tc.out {
			t.Errorf("%s marshals as %s", tc.in, b)
		}
	}
	var s aiprovider.Strings
	if err := json.Unmarshal([]byte(`[1,2]`), &s); err == nil {
		t.Error("token arrays accepted")
	}
}
