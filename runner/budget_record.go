package runner

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// RecordKeyLLM is the member of an llm_call invocation's recorded writes
// that holds its LLMRecord. State key names are identifiers, so it never
// collides with a write; a resume reads only the node's output keys.
const RecordKeyLLM = "lgx:llm"

// LLMRecord is what the record keeps of an llm_call invocation besides its
// writes (SPEC §9.9): the provider that answered (a fallback's name when
// the call fell back), the usage of all its attempts, the budgets it was
// charged to, and, for a budget interrupt, the budget that ran out. A
// resume counts the usage against the budgets again, so a run budget
// holds across resumes.
type LLMRecord struct {
	Provider     string  `json:"provider,omitempty"`
	InputTokens  int64   `json:"input_tokens,omitempty"`
	OutputTokens int64   `json:"output_tokens,omitempty"`
	USD          float64 `json:"usd,omitempty"`
	// Budgets are the budgets charged ("run", "pool NAME", "provider NAME").
	Budgets []string `json:"budgets,omitempty"`
	// Exhausted is the budget a paused invocation waits for.
	Exhausted string `json:"exhausted,omitempty"`
	// Limits are the limits of charged budgets that a resume raised, so
	// that a later resume keeps them.
	Limits map[string]RecordedLimit `json:"limits,omitempty"`
}

// RecordedLimit is a budget's raised limits (0 = not raised).
type RecordedLimit struct {
	Tokens int64   `json:"tokens,omitempty"`
	USD    float64 `json:"usd,omitempty"`
}

// llmCharges accumulates an invocation's LLMRecord while it runs (its
// attempts and fallbacks run one after the other on one goroutine).
type llmCharges struct {
	rec  LLMRecord
	used bool // a call was made (or paused) under this invocation
	// budgets charged, for Limits when one was raised.
	charged []*tokenBudget
}

// charge adds one call's usage and the budgets it settled with.
func (ch *llmCharges) charge(u nodes.TokenUsage, usd float64, budgets []*tokenBudget) {
	ch.used = true
	ch.rec.InputTokens += int64(u.Input)
	ch.rec.OutputTokens += int64(u.Output)
	ch.rec.USD += usd
	for _, b := range budgets {
		if !slices.Contains(ch.charged, b) {
			ch.charged = append(ch.charged, b)
			ch.rec.Budgets = append(ch.rec.Budgets, b.name)
		}
	}
}

// record is the invocation's LLMRecord, nil when it made no call and
// names no provider.
func (ch *llmCharges) record(provider, exhausted string) *LLMRecord {
	if !ch.used && provider == "" && exhausted == "" {
		return nil
	}
	rec := ch.rec
	rec.Provider, rec.Exhausted = provider, exhausted
	for _, b := range ch.charged {
		b.mu.Lock()
		if b.raised {
			if rec.Limits == nil {
				rec.Limits = map[string]RecordedLimit{}
			}
			rec.Limits[b.name] = RecordedLimit{Tokens: b.limit, USD: b.usdLimit}
		}
		b.mu.Unlock()
	}
	return &rec
}

// appendLLMRecord adds rec to the JSON object of recorded writes b.
func appendLLMRecord(b []byte, rec *LLMRecord) ([]byte, error) {
	if rec == nil {
		return b, nil
	}
	j, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("recorded writes %q are not an object", b)
	}
	out := make([]byte, 0, len(b)+len(j)+len(RecordKeyLLM)+4)
	out = append(out, b[:len(b)-1]...)
	if len(b) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"`+RecordKeyLLM+`":`...)
	out = append(out, j...)
	return append(out, '}'), nil
}

// RecordedLLM reads the LLMRecord of a recorded invocation; ok is false
// when it has none (not an llm_call, or recorded before lgx kept one).
func RecordedLLM(inv *store.Invocation) (rec LLMRecord, ok bool) {
	if len(inv.Writes) == 0 || !strings.Contains(string(inv.Writes), RecordKeyLLM) {
		return rec, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(inv.Writes, &m) != nil {
		return rec, false
	}
	raw, ok := m[RecordKeyLLM]
	if !ok || json.Unmarshal(raw, &rec) != nil {
		return LLMRecord{}, false
	}
	return rec, true
}

// WritesWithoutLLM is a recorded invocation's writes without its
// LLMRecord, as the state keys it wrote.
func WritesWithoutLLM(raw json.RawMessage) json.RawMessage {
	if !strings.Contains(string(raw), RecordKeyLLM) {
		return raw
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	delete(m, RecordKeyLLM)
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return b
}

// seedBudgets charges the budgets of a resumed run with the usage its
// recorded invocations report and restores limits an earlier resume
// raised, so that a budget spans the whole run, not each process. A
// budget of a subgraph's own pool lives as long as one subgraph
// invocation and is not seeded.
func (l *limits) seedBudgets(invs []*store.Invocation) {
	for _, inv := range invs {
		rec, ok := RecordedLLM(inv)
		if !ok {
			continue
		}
		for name, lim := range rec.Limits {
			if b := l.budget(name); b != nil {
				b.raise(lim.Tokens, lim.USD)
			}
		}
		used := amount{tokens: rec.InputTokens + rec.OutputTokens, usd: rec.USD}
		for _, name := range rec.Budgets {
			if b := l.budget(name); b != nil {
				b.mu.Lock()
				b.used = b.used.plus(used)
				b.mu.Unlock()
			}
		}
	}
}

// budgetAnswer handles a resume's answer to budget interrupts (SPEC §9.4,
// §9.9): the calls paused because a budget with on_exhausted: interrupt
// ran out. All that wait for one budget are one question, answered by
// `-i tokens=N` and/or `-i usd=X`, the budget's new limits; the paused
// calls then run again (they are not fed the answer as a result).
// handled reports that the answer was for a budget; otherwise waiting is
// returned for answers() to match against interrupt nodes.
func (l *limits) budgetAnswer(runID string, waiting []Interrupt, a Answer) (handled bool, err error) {
	target, tokens, usd, handled, err := l.budgetRaise(runID, waiting, a)
	if err != nil || !handled {
		return handled, err
	}
	l.budget(target.Budget).raise(tokens, usd)
	return true, nil
}

// budgetRaise reads a resume's answer as budgetAnswer does, raising
// nothing: the budget interrupt it answers and the new limits (0: kept).
// target is set whenever handled and err is nil.
func (l *limits) budgetRaise(runID string, waiting []Interrupt, a Answer) (target *Interrupt, tokens int64, usd float64, handled bool, err error) {
	target, handled, err = l.budgetTarget(runID, waiting, a)
	if err != nil || !handled {
		return nil, 0, 0, handled, err
	}
	tokens, usd, err = l.budgetLimits(runID, target, a)
	if err != nil {
		return nil, 0, 0, true, err
	}
	return target, tokens, usd, true, nil
}

// budgetTarget is the budget interrupt a resume's answer is for (see
// budgetAnswer); handled is false when it is for an interrupt node.
func (l *limits) budgetTarget(runID string, waiting []Interrupt, a Answer) (target *Interrupt, handled bool, err error) {
	var budgets []string
	for _, in := range waiting {
		if in.Budget != "" && !slices.Contains(budgets, in.Budget) {
			budgets = append(budgets, in.Budget)
		}
	}
	if len(budgets) == 0 {
		return nil, false, nil
	}
	switch {
	case a.Node != "":
		for i := range waiting {
			if in := &waiting[i]; in.Budget != "" && in.named(a.Node) {
				if target != nil && target.Budget != in.Budget {
					return nil, false, &InputError{Msg: fmt.Sprintf("run %s waits at budgets %s and %s at node %s; name one call by path with --node:\n%s",
						runID, target.Budget, in.Budget, a.Node, listInterrupts(waiting))}
				}
				if target == nil {
					target = in
				}
			}
		}
		if target == nil {
			return nil, false, nil // an interrupt node's path or name
		}
	case len(budgets) > 1 || len(budgets) < len(waitingKinds(waiting)):
		return nil, false, nil // answers() asks for --node, listing them all
	default:
		target = &waiting[0]
	}
	return target, true, nil
}

// budgetLimits checks the new limits an answer to the budget interrupt
// target gives (tokens=N, usd=X): each must raise its limit.
func (l *limits) budgetLimits(runID string, target *Interrupt, a Answer) (tokens int64, usd float64, err error) {
	if a.Values == nil {
		return 0, 0, &InputError{Msg: fmt.Sprintf("run %s waits at %s: %s\nraise the budget with -i tokens=N or -i usd=X (its new limit)", runID, target.Path, target.Message)}
	}
	b := l.budget(target.Budget)
	if b == nil {
		return 0, 0, &InputError{Msg: fmt.Sprintf("run %s waits for budget %s, which its workflow no longer declares", runID, target.Budget)}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Values)) {
		v := a.Values[k]
		switch k {
		case "tokens":
			n, ok := toInt64(v)
			if !ok || n < 1 {
				return 0, 0, &InputError{Msg: fmt.Sprintf("-i tokens=%v: want the budget's new limit in tokens, a positive integer", v)}
			}
			if b.limit == 0 {
				return 0, 0, &InputError{Msg: fmt.Sprintf("budget %s has no token limit to raise; raise its usd", b.name)}
			}
			if n <= b.limit {
				return 0, 0, &InputError{Msg: fmt.Sprintf("-i tokens=%d does not raise budget %s: its limit is %d tokens (%d used)", n, b.name, b.limit, b.used.tokens)}
			}
			tokens = n
		case "usd":
			f, ok := toFloat(v)
			if !ok || f <= 0 {
				return 0, 0, &InputError{Msg: fmt.Sprintf("-i usd=%v: want the budget's new limit in US dollars, a positive number", v)}
			}
			if b.usdLimit == 0 {
				return 0, 0, &InputError{Msg: fmt.Sprintf("budget %s has no money limit to raise; raise its tokens", b.name)}
			}
			if f <= b.usdLimit {
				return 0, 0, &InputError{Msg: fmt.Sprintf("-i usd=%v does not raise budget %s: its limit is %s (%s used)", v, b.name, formatUSD(b.usdLimit, 2), formatUSD(b.used.usd, 4))}
			}
			usd = f
		default:
			return 0, 0, &InputError{Msg: fmt.Sprintf("-i %s: a budget interrupt takes tokens=N and usd=X (the new limits of budget %s)", k, b.name)}
		}
	}
	if tokens == 0 && usd == 0 {
		return 0, 0, &InputError{Msg: fmt.Sprintf("run %s waits at %s: %s\nraise the budget with -i tokens=N or -i usd=X (its new limit)", runID, target.Path, target.Message)}
	}
	return tokens, usd, nil
}

// waitingKinds is waiting without repeated budget interrupts of one
// budget: the questions a resume must answer.
func waitingKinds(waiting []Interrupt) []string {
	var out []string
	for _, in := range waiting {
		k := "path " + in.Path
		if in.Budget != "" {
			k = "budget " + in.Budget
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// recordedExhausted names the budget a recorded paused invocation waits
// for, or "" (an interrupt node).
func recordedExhausted(inv *store.Invocation) string {
	if inv.ErrorKind != string(nodes.KindBudget) {
		return ""
	}
	rec, _ := RecordedLLM(inv)
	return rec.Exhausted
}
