package store_test

import (
	"path/filepath"
	"testing"

	"github.com/lgx-run/lgx/store"
	"github.com/lgx-run/lgx/store/storetest"
)

func openTemp(t *testing.T) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}
