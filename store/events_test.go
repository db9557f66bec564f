package store_test

import (
	"testing"

	"github.com/lgx-run/lgx/store"
	"github.com/lgx-run/lgx/store/storetest"
)

func TestSQLiteEvents(t *testing.T) {
	storetest.RunEvents(t, func(t *testing.T) storetest.EventStore { return openTemp(t) })
}

func TestMemoryEvents(t *testing.T) {
	storetest.RunEvents(t, func(t *testing.T) storetest.EventStore { return store.NewMemory() })
}
