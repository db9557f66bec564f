package main

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lgx-run/lgx/internal/llmtest"
)

// cmdLLMEcho: llmecho VAR. Starts the protocol-faithful OpenAI and
// Anthropic test server answering every request with text derived from
// its last message (its first 40 characters, its length and a hash of
// all of it), so that a
// run's output depends on what each call was asked, and two engines'
// runs can be compared byte for byte. $VAR is the OpenAI base URL.
func cmdLLMEcho(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: llmecho VAR")
	}
	srv, err := llmtest.Start(llmtest.Script{Respond: func(r llmtest.Request) llmtest.Reply {
		msgs := r.Messages()
		last := ""
		if len(msgs) > 0 {
			last = fmt.Sprint(msgs[len(msgs)-1]["content"])
		}
		head := last
		if len(head) > 40 {
			head = head[:40]
		}
		head = strings.ReplaceAll(head, "\n", " ")
		h := fnv.New32a()
		h.Write([]byte(last))
		return llmtest.Reply{Text: fmt.Sprintf("summary of %q (%d chars, %08x)", head, len(last), h.Sum32()), Usage: &llmtest.Usage{InputTokens: len(last), OutputTokens: 10}}
	}})
	if err != nil {
		ts.Fatalf("llmecho: %v", err)
	}
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.OpenAIURL())
}
