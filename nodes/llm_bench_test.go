package nodes

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
)

// benchChunks is a 20-token answer.
var benchChunks = func() []string {
	out := make([]string, 20)
	for i := range out {
		out[i] = fmt.Sprintf("tok%02d ", i)
	}
	return out
}()

// BenchmarkLLMCallOverhead compares one llm_call invocation with the bare
// SDK streaming call it wraps, against the same loopback server.
func BenchmarkLLMCallOverhead(b *testing.B) {
	for _, kind := range []string{"openai", "anthropic"} {
		srv, err := llmtest.Start(llmtest.Script{Respond: func(llmtest.Request) llmtest.Reply {
			return llmtest.Reply{Chunks: benchChunks, Usage: &llmtest.Usage{InputTokens: 10, OutputTokens: 20}}
		}})
		if err != nil {
			b.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		base := srv.OpenAIURL()
		if kind == "anthropic" {
			base = srv.AnthropicURL()
		}
		ctx := context.Background()

		sdkCall := benchSDKCall(b, kind, base, hc)
		host := &llmTestHost{
			provider: Provider{Name: "default", Kind: kind, Model: "m", BaseURL: base, APIKey: "k"},
			hc:       hc,
		}
		typ, _ := Lookup("llm_call")
		with := map[string]any{"prompt": "hello"}
		prep, err := typ.(Preparer).Prepare(map[string]any{})
		if err != nil {
			b.Fatal(err)
		}
		nodeCall := func() {
			host.tokens = host.tokens[:0]
			if _, err := typ.Run(ctx, &Invocation{Index: -1, With: with, Prepared: prep, Host: host}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(kind+"/sdk", func(b *testing.B) {
			for b.Loop() {
				sdkCall()
			}
		})
		b.Run(kind+"/llm_call", func(b *testing.B) {
			for b.Loop() {
				nodeCall()
			}
		})
		// Alternating the two calls exposes both to the same machine load;
		// the reported overhead compares their medians.
		b.Run(kind+"/interleaved", func(b *testing.B) {
			var sdkT, nodeT []time.Duration
			for b.Loop() {
				t0 := time.Now()
				sdkCall()
				t1 := time.Now()
				nodeCall()
				sdkT, nodeT = append(sdkT, t1.Sub(t0)), append(nodeT, time.Since(t1))
			}
			slices.Sort(sdkT)
			slices.Sort(nodeT)
			ms, mn := sdkT[len(sdkT)/2], nodeT[len(nodeT)/2]
			b.ReportMetric(float64(ms.Microseconds()), "µs/sdk-median")
			b.ReportMetric(float64(mn.Microseconds()), "µs/llm_call-median")
			b.ReportMetric(100*(float64(mn)/float64(ms)-1), "%overhead")
		})
		hc.CloseIdleConnections()
		srv.Close()
	}
}

// benchSDKCall returns a bare SDK streaming call of kind that collects the
// text, as llm_call does.
func benchSDKCall(b *testing.B, kind, base string, hc *http.Client) func() {
	ctx := context.Background()
	if kind == "openai" {
		c := openai.NewClient(ooption.WithBaseURL(base), ooption.WithAPIKey("k"), ooption.WithHTTPClient(hc), ooption.WithMaxRetries(0))
		params := openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
		return func() {
			s := c.Chat.Completions.NewStreaming(ctx, params)
			defer s.Close()
			var text []byte
			for s.Next() {
				for _, ch := range s.Current().Choices {
					text = append(text, ch.Delta.Content...)
				}
			}
			if s.Err() != nil || len(text) == 0 {
				b.Fatal(s.Err())
			}
		}
	}
	c := anthropic.NewClient(aoption.WithBaseURL(base), aoption.WithAPIKey("k"), aoption.WithHTTPClient(hc), aoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{Model: "m", MaxTokens: 100, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))}}
	return func() {
		s := c.Messages.NewStreaming(ctx, params)
		defer s.Close()
		var text []byte
		for s.Next() {
			if ev := s.Current(); ev.Type == "content_block_delta" {
				text = append(text, ev.Delta.Text...)
			}
		}
		if s.Err() != nil || len(text) == 0 {
			b.Fatal(s.Err())
		}
	}
}

// latencyHost records when each token reaches Host.Token.
type latencyHost struct {
	*llmTestHost
	mu      *sync.Mutex
	sent    []time.Time
	n       int
	latency []time.Duration
}

func (h *latencyHost) Token(string) {
	now := time.Now()
	h.mu.Lock()
	h.latency = append(h.latency, now.Sub(h.sent[h.n]))
	h.n++
	h.mu.Unlock()
}

// BenchmarkTokenLatency measures the time from the server writing a text
// chunk to llm_call handing it to Host.Token, and reports the median and
// 90th percentile.
func BenchmarkTokenLatency(b *testing.B) {
	for _, kind := range []string{"openai", "anthropic"} {
		b.Run(kind, func(b *testing.B) {
			var mu sync.Mutex
			h := &latencyHost{mu: &mu, sent: make([]time.Time, len(benchChunks))}
			srv, err := llmtest.Start(llmtest.Script{Respond: func(llmtest.Request) llmtest.Reply {
				return llmtest.Reply{Chunks: benchChunks, Delay: 200 * time.Microsecond, OnChunk: func(i int) {
					mu.Lock()
					h.sent[i] = time.Now()
					mu.Unlock()
				}}
			}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			hc := &http.Client{Transport: &http.Transport{}}
			defer hc.CloseIdleConnections()
			base := srv.OpenAIURL()
			if kind == "anthropic" {
				base = srv.AnthropicURL()
			}
			h.llmTestHost = &llmTestHost{provider: Provider{Name: "default", Kind: kind, Model: "m", BaseURL: base, APIKey: "k"}, hc: hc}
			typ, _ := Lookup("llm_call")
			prep, _ := typ.(Preparer).Prepare(map[string]any{})
			for b.Loop() {
				mu.Lock()
				h.n = 0
				mu.Unlock()
				if _, err := typ.Run(context.Background(), &Invocation{Index: -1, With: map[string]any{"prompt": "x"}, Prepared: prep, Host: h}); err != nil {
					b.Fatal(err)
				}
				if h.n != len(benchChunks) {
					b.Fatalf("%d tokens, want %d", h.n, len(benchChunks))
				}
			}
			slices.Sort(h.latency)
			if len(h.latency) > 0 {
				b.ReportMetric(float64(h.latency[len(h.latency)/2].Microseconds()), "µs/token-median")
				b.ReportMetric(float64(h.latency[len(h.latency)*9/10].Microseconds()), "µs/token-p90")
			}
		})
	}
}
