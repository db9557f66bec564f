package spec

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// exampleDoc builds a workflow that uses every field of every block of the
// format table, with each field's example value. When bogus names a block,
// every occurrence of that block also gets an unknown key.
func exampleDoc(t *testing.T, bogus string) string {
	t.Helper()
	wb, _ := BlockByName(BlockWorkflow)
	root := exampleBlock(t, wb, bogus)
	out, err := yaml.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func exampleBlock(t *testing.T, b *Block, bogus string) *yaml.Node {
	t.Helper()
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k string, v *yaml.Node) {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
	}
	for _, f := range b.Fields {
		if f.Block == "" {
			if f.Example == "" {
				t.Fatalf("%s.%s has neither a block nor an example", b.Name, f.Name)
			}
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(f.Example), &n); err != nil {
				t.Fatalf("%s.%s example %q: %v", b.Name, f.Name, f.Example, err)
			}
			add(f.Name, n.Content[0])
			continue
		}
		sub, ok := BlockByName(f.Block)
		if !ok {
			t.Fatalf("%s.%s: unknown block %q", b.Name, f.Name, f.Block)
		}
		v := exampleBlock(t, sub, bogus)
		switch {
		case f.Map:
			v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: "example_" + sub.Name}, v}}
		case hasType(f.Types, JSONArray):
			v = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{v}}
		}
		add(f.Name, v)
	}
	if b.Name == bogus {
		add("bogus_key", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: "1"})
	}
	return m
}

// TestFieldTableMatchesLoader checks that the loader accepts every key the
// format table (and so `lgx schema`) declares, in every block, and that it
// rejects an unknown key in each of them.
func TestFieldTableMatchesLoader(t *testing.T) {
	src := exampleDoc(t, "")
	_, diags := Load("every-field.yaml", []byte(src))
	for _, d := range diags {
		if d.Code == CodeUnknownKey {
			t.Errorf("the loader rejects a key of the format table: %s", d)
		}
	}
	if t.Failed() {
		t.Logf("document:\n%s", src)
	}

	for _, b := range Blocks {
		t.Run("unknown key in "+b.Name, func(t *testing.T) {
			src := exampleDoc(t, b.Name)
			_, diags := Load("bogus.yaml", []byte(src))
			for _, d := range diags {
				if d.Code == CodeUnknownKey && strings.Contains(d.Message, "bogus_key") {
					return
				}
			}
			t.Errorf("no unknown-key diagnostic for bogus_key in %s; got %v\n%s", b.Name, diags, src)
		})
	}
}

// TestFieldTable checks the table itself: unique blocks and keys, a
// description for each, and references to blocks that exist.
func TestFieldTable(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range Blocks {
		if seen[b.Name] {
			t.Errorf("block %s declared twice", b.Name)
		}
		seen[b.Name] = true
		if b.Description == "" {
			t.Errorf("block %s has no description", b.Name)
		}
		keys := map[string]bool{}
		for _, f := range b.Fields {
			if keys[f.Name] {
				t.Errorf("%s.%s declared twice", b.Name, f.Name)
			}
			keys[f.Name] = true
			if f.Description == "" {
				t.Errorf("%s.%s has no description", b.Name, f.Name)
			}
			if _, ok := BlockByName(f.Block); f.Block != "" && !ok {
				t.Errorf("%s.%s names unknown block %q", b.Name, f.Name, f.Block)
			}
		}
		if b.Shorthand != "" && !keys[b.Shorthand] {
			t.Errorf("block %s: shorthand %q is not one of its fields", b.Name, b.Shorthand)
		}
	}
	if Blocks[0].Name != BlockWorkflow {
		t.Errorf("first block is %s, want %s", Blocks[0].Name, BlockWorkflow)
	}
	if _, ok := BlockByName("nope"); ok {
		t.Error("BlockByName found a block that does not exist")
	}
}
