package spec

import "strings"

// suggest returns the candidate closest to s by edit distance, or "" when
// none is close enough to be what the user meant.
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	limit := len(s) / 3
	if limit < 1 {
		limit = 1
	}
	if limit > 3 {
		limit = 3
	}
	for _, c := range candidates {
		if c == s {
			continue
		}
		d := editDistance(s, c)
		if d <= limit && (bestD < 0 || d < bestD || (d == bestD && c < best)) {
			best, bestD = c, d
		}
	}
	return best
}

// didYouMean is suggest's hint text ("did you mean X?"), or "".
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return "did you mean " + c + "?"
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b (bytes), with a
// transposition counting as one edit.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// typeHint is the hint for a word that is not a state type: the type it
// names elsewhere or the closest, else the list of types.
func typeHint(s string) string {
	// The names other languages and schemas give lgx's types, too far
	// from them for suggest (bool is three edits from boolean).
	alias := ""
	switch s {
	case "bool":
		alias = TypeBoolean
	case "int", "int64":
		alias = TypeInteger
	case "float", "float64", "double":
		alias = TypeNumber
	case "str", "text":
		alias = TypeString
	case "array":
		alias = TypeList
	case "dict", "map":
		alias = TypeObject
	}
	if alias != "" {
		return "did you mean " + alias + "?"
	}
	if h := didYouMean(s, allTypes); h != "" {
		return h
	}
	return "types: " + strings.Join(allTypes, ", ")
}
