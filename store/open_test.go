package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LGX_HOME", dir)
	tests := []struct {
		url  string
		want string // the store's type, or "" for an ErrBadStoreURL
		path string // the SQLite file, when want is *SQLite
	}{
		{"", "*store.SQLite", filepath.Join(dir, "lgx.db")},
		{"sqlite", "*store.SQLite", filepath.Join(dir, "lgx.db")},
		{"sqlite:" + filepath.Join(dir, "other.db"), "*store.SQLite", filepath.Join(dir, "other.db")},
		{"sqlite://" + filepath.Join(dir, "third.db"), "*store.SQLite", filepath.Join(dir, "third.db")},
		{"memory", "*store.Memory", ""},
		{"sqlite:", "", ""},
		{"mysql://u:pw@h/db", "", ""},
		{"/some/file.db", "", ""},
		{"memroy", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			s, err := Open(context.Background(), tc.url)
			if tc.want == "" {
				if !errors.Is(err, ErrBadStoreURL) {
					t.Fatalf("Open(%q) = %v, want ErrBadStoreURL", tc.url, err)
				}
				if strings.Contains(err.Error(), "pw@") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			defer s.Close()
			if got := typeName(s); got != tc.want {
				t.Fatalf("Open(%q) = %s, want %s", tc.url, got, tc.want)
			}
			if sq, ok := s.(*SQLite); ok && sq.Path() != tc.path {
				t.Errorf("Open(%q) opened %s, want %s", tc.url, sq.Path(), tc.path)
			}
		})
	}
}

func typeName(s Store) string {
	switch s.(type) {
	case *SQLite:
		return "*store.SQLite"
	case *Memory:
		return "*store.Memory"
	}
	return "other"
}

func TestOpenRegistered(t *testing.T) {
	var got string
	RegisterOpener("fake", func(_ context.Context, url string) (Store, error) {
		got = url
		return NewMemory(), nil
	})
	defer func() {
		openersMu.Lock()
		delete(openers, "fake")
		openersMu.Unlock()
	}()
	s, err := Open(context.Background(), "fake://host/db")
	if err != nil || got != "fake://host/db" {
		t.Fatalf("Open(fake://) = %v, opener saw %q", err, got)
	}
	s.Close()
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?x=1": "postgres://u:xxxxx@h:5432/db?x=1",
		"postgres://u@h/db":                 "postgres://u@h/db",
		"postgres://h/db":                   "postgres://h/db",
		"sqlite:/a/b.db":                    "sqlite:/a/b.db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
