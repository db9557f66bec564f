package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// `lgx man DIR` writes one page per command a user can run, each with the
// command's synopsis and summary, and none for hidden commands.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01: reproducible dates
	var errb bytes.Buffer
	if code := execute(t.Context(), []string{"man", dir}, &IOStreams{Out: &bytes.Buffer{}, Err: &errb, Width: 80}); code != exitOK {
		t.Fatalf("lgx man: exit %d: %s", code, errb.String())
	}
	root := (&app{ios: &IOStreams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}, Width: 80}}).rootCmd()
	want := 0
	walk(root, func(c *cobra.Command) {
		page := filepath.Join(dir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		if c != root && !available(c) {
			if _, err := os.Stat(page); err == nil {
				t.Errorf("%s: a page for a hidden command", page)
			}
			return
		}
		want++
		c.InitDefaultHelpFlag() // as executing does: UseLine then ends in [flags]
		b, err := os.ReadFile(page)
		if err != nil {
			t.Errorf("no page for %q: %v", c.CommandPath(), err)
			return
		}
		s := string(b)
		for _, part := range []string{
			`.TH "` + strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", "-")) + `" "1" "Jan 2026" "lgx ` + versionString() + `" "lgx manual"`,
			".SH SYNOPSIS\n" + `\fB` + c.UseLine() + `\fP`,
			".SH NAME\n" + strings.ReplaceAll(c.CommandPath(), " ", "-") + " - " + c.Short,
		} {
			if !strings.Contains(s, part) {
				t.Errorf("%s lacks %q:\n%s", page, part, s)
			}
		}
	})
	if want < 15 {
		t.Errorf("only %d commands have pages", want)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(files) != want {
		t.Errorf("%d pages written, want %d: %v", len(files), want, files)
	}
	if _, err := os.Stat(filepath.Join(dir, "lgx-man.1")); err == nil {
		t.Error("the hidden man command has a page")
	}
	if !strings.Contains(errb.String(), "wrote ") {
		t.Errorf("stderr %q", errb.String())
	}
}
