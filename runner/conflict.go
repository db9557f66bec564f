package runner

import "fmt"

// planConflicts is the replace-conflict check of a step, done when the step
// is formed and before any of its invocations starts (SPEC §9.5): a node's
// output keys are static, so which keys a step writes, and how many times,
// is known from its nodes and for_each items alone. A conflicting step sends
// nothing. It returns the *ConflictError apply would (same key, same
// writers, same order: nodes in file order, items in index order).
func (c *core) planConflicts(runs []*nodeRun) error {
	// writes reports how many invocations nr makes (each writes every
	// key of the node's output once).
	writes := func(nr *nodeRun) int {
		if nr.items == nil {
			return 1
		}
		return len(nr.items)
	}
	if len(runs) == 1 {
		// One node: only a for_each with two or more items can conflict,
		// and then on its first replace key.
		nr := runs[0]
		if writes(nr) < 2 {
			return nil
		}
		for _, o := range nr.n.output {
			if o.key.replace {
				return c.conflict(runs, o.key)
			}
		}
		return nil
	}
	count := make(map[int]int)
	var first *keyInfo // the first key to reach two writers, in apply order
	for _, nr := range runs {
		k := writes(nr)
		if k == 0 {
			continue
		}
		// The node's first invocation writes each key once, in output
		// order; a key written earlier in the step conflicts there.
		for _, o := range nr.n.output {
			if !o.key.replace {
				continue
			}
			count[o.key.idx]++
			if count[o.key.idx] == 2 {
				first = o.key
				break
			}
		}
		if first == nil && k >= 2 {
			// Its second item rewrites its first replace key.
			for _, o := range nr.n.output {
				if o.key.replace {
					first = o.key
					break
				}
			}
		}
		if first != nil {
			break
		}
	}
	if first == nil {
		return nil
	}
	return c.conflict(runs, first)
}

// conflict builds the *ConflictError of key k for the step's runs.
func (c *core) conflict(runs []*nodeRun, k *keyInfo) *ConflictError {
	ce := &ConflictError{Key: k.name, Step: c.step}
	for _, nr := range runs {
		writes := false
		for _, o := range nr.n.output {
			if o.key == k {
				writes = true
				break
			}
		}
		if !writes {
			continue
		}
		if nr.items == nil {
			ce.Writers = append(ce.Writers, nr.n.name)
			continue
		}
		for i := range nr.items {
			ce.Writers = append(ce.Writers, fmt.Sprintf("%s[%d]", nr.n.name, i))
		}
	}
	return ce
}
