package llm

import "testing"

// TestKeyEnv: every provider kind names the environment variable its key
// defaults to (the variables the vendors' SDKs read), and nothing else
// does; the runner reads and redacts exactly these.
func TestKeyEnv(t *testing.T) {
	want := map[string]string{KindOpenAI: "OPENAI_API_KEY", KindAnthropic: "ANTHROPIC_API_KEY"}
	for _, kind := range Kinds {
		if got := KeyEnv(kind); got == "" || got != want[kind] {
			t.Errorf("KeyEnv(%q) = %q, want %q", kind, got, want[kind])
		}
	}
	if len(want) != len(Kinds) {
		t.Errorf("Kinds = %v: a kind without a key variable here", Kinds)
	}
	if got := KeyEnv("azure"); got != "" {
		t.Errorf("KeyEnv(azure) = %q, want none", got)
	}
}
