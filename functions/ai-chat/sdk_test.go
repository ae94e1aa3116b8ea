package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/serverless"
)

// The official OpenAI Go SDK, pointed at the bridge with a tenant API key,
// is a client like any other: chat, streaming chat, embeddings, the model
// list, and the bridge's errors as the SDK's typed *openai.Error.
func TestOpenAIGoSDKIsAClient(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "Spring term starts in March.", PromptTokens: 11, CompletionTokens: 6})
	f.anthropic.SetModel("claude-mini", fakeprovider.Model{Reply: "Bonjour from Claude, via OpenAI's shapes.", PromptTokens: 12, CompletionTokens: 7})
	_, key := f.newKey(t, map[string]any{"name": "sdk"})
	client := openai.NewClient(option.WithBaseURL(f.srv.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ctx := context.Background()

	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are a kindergarten assistant."), openai.UserMessage("When does spring term start?")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content != "Spring term starts in March." || chat.Usage.PromptTokens != 11 || chat.Usage.CompletionTokens != 6 || chat.Model != "gpt-mini" {
		t.Fatalf("chat %+v", chat)
	}

	// Anthropic's Messages API behind OpenAI's endpoint, streamed, usage asked for.
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "claude-mini",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say bonjour")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != "Bonjour from Claude, via OpenAI's shapes." {
		t.Fatalf("streamed %q", got)
	}
	if acc.Usage.PromptTokens != 12 || acc.Usage.CompletionTokens != 7 {
		t.Fatalf("streamed usage %+v", acc.Usage)
	}

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "embed-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"小班", "中班"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 8 || emb.Model != "embed-small" {
		t.Fatalf("embeddings %+v", emb)
	}

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:  "gpt-mini",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
	})
	if err != nil || comp.Choices[0].Text == "" {
		t.Fatalf("completion %+v %v", comp, err)
	}

	var names []string
	iter := client.Models.ListAutoPaging(ctx)
	for iter.Next() {
		names = append(names, iter.Current().ID)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "gpt-mini,claude-mini,embed-small" {
		t.Fatalf("models %v", names)
	}

	// Errors come back typed: a model the tenant has not enabled…
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-9", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || apiErr.Code != "model_not_enabled" || apiErr.Type != "permission_error" {
		t.Fatalf("not enabled: %v", err)
	}
	// …and an account that cannot pay.
	f.exec(t, "UPDATE tenant_accounts SET balance = 0 WHERE tenant_id = ?", f.tenant["k001"])
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusPaymentRequired || apiErr.Code != "insufficient_balance" {
		t.Fatalf("no money: %v", err)
	}
	// A bad key.
	bad := openai.NewClient(option.WithBaseURL(f.srv.URL+"/v1/"), option.WithAPIKey("uk-not-a-key"), option.WithMaxRetries(0))
	if _, err = bad.Models.List(ctx); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
		t.Fatalf("bad key: %v", err)
	}
}

// 200 concurrent calls against a budget that covers 50: no more than the
// budget is ever spent, every refusal is a 402, and the account balances to
// the cent with the call logs.
func TestBudgetHoldsUnder200ConcurrentCalls(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.bridge.TenantRPM = 1000 // this test is about money, not rate
	// Free input, 1.00 per 1000 output tokens, 10 tokens a call: 0.01 a call,
	// exactly what max_tokens 10 reserves. A budget of 0.50 covers 50.
	f.exec(t, "UPDATE ai_model_config SET input_price_per_1k = 0, output_price_per_1k = 1 WHERE model_name = 'gpt-mini'")
	f.exec(t, "UPDATE tenant_accounts SET balance = 0.50, credit_limit = 0 WHERE tenant_id = ?", f.tenant["k001"])
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "ok", PromptTokens: 5, CompletionTokens: 10})
	_, key := f.newKey(t, map[string]any{"name": "load", "rpm": 1000})

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		codes    = map[string]int{}
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", f.srv.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"gpt-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			r := reply{Status: resp.StatusCode}
			r.Body = readAll(resp)
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			if r.Status != 200 {
				codes[r.openAIErr(t).Code]++
			}
		}()
	}
	wg.Wait()
	if statuses[200] != 50 || statuses[402] != 150 || codes["insufficient_balance"] != 150 {
		t.Fatalf("statuses %v codes %v", statuses, codes)
	}
	a := f.account(t, "k001")
	var logged string
	if err := f.sys.QueryRow("SELECT COALESCE(SUM(cost), 0) FROM ai_service_call_logs WHERE tenant_id = ?", f.tenant["k001"]).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	spent := budget.MustParseAmount("0.50") - a.Balance
	if a.Balance < 0 || a.Reserved != 0 || spent != budget.MustParseAmount(logged) || spent != budget.MustParseAmount("0.50") {
		t.Fatalf("account %+v, logged %s", a, logged)
	}
	var open int
	f.sys.QueryRow("SELECT COUNT(*) FROM ai_budget_reservations WHERE tenant_id = ? AND status = 'reserved'", f.tenant["k001"]).Scan(&open)
	if open != 0 || f.openai.Calls("gpt-mini") != 50 {
		t.Fatalf("%d open reservations, %d provider calls", open, f.openai.Calls("gpt-mini"))
	}
}

// Behind API Gateway's HTTP API (the Lambda adapter buffers the response),
// a stream is not cut: the whole event stream arrives at the end.
func TestStreamBehindABufferingGatewayArrivesWhole(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "one two three four five", PromptTokens: 5, CompletionTokens: 5})
	proxy, ok := serverless.HTTPLambdaHandler(newHandler(f.h), logging.Discard(), maxRequestBody).(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error))
	if !ok {
		t.Fatal("the HTTP API handler has another signature")
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "POST /v1/chat/completions", RawPath: "/v1/chat/completions",
		Headers: map[string]string{"authorization": "Bearer " + f.token(t, adminUser, "k001"), "content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
		Body:    `{"model":"gpt-mini","stream":true,"messages":[{"role":"user","content":"count"}]}`,
		RequestContext: events.APIGatewayV2HTTPRequestContext{DomainName: "abc123.execute-api.us-east-1.amazonaws.com", RequestID: "gw-stream-1",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/v1/chat/completions", SourceIP: "203.0.113.9"}},
	}
	resp, err := proxy(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	events := sse(t, strings.NewReader(resp.Body))
	var text strings.Builder
	for _, e := range events[:max(len(events)-1, 0)] {
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if resp.StatusCode != 200 || resp.Headers["Content-Type"] != "text/event-stream" || len(events) < 6 || events[len(events)-1] != "[DONE]" ||
		strings.TrimSpace(text.String()) != "one two three four five" {
		t.Fatalf("%d %v %q", resp.StatusCode, resp.Headers, resp.Body)
	}
	rows := f.logs(t, "tenant_id = ? AND streamed = 1 AND status = 'success'", f.tenant["k001"])
	if len(rows) != 1 || rows[0].ClientGone {
		t.Fatalf("rows %+v", rows)
	}
	// What a direct client gets as trailers comes as headers here, with no
	// declaration of trailers that never follow.
	if _, err := serverTiming(resp.Headers["Server-Timing"]); err != nil || resp.Headers[headerCallID] != rows[0].RequestID || resp.Headers["Trailer"] != "" {
		t.Fatalf("headers %v (%v), want the call %s's id and Server-Timing, no Trailer", resp.Headers, err, rows[0].RequestID)
	}
}
