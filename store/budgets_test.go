package store_test

import (
	"testing"

	"github.com/lgx-run/lgx/store"
	"github.com/lgx-run/lgx/store/storetest"
)

func TestSQLiteBudgets(t *testing.T) {
	storetest.RunBudgets(t, func(t *testing.T) storetest.BudgetStore { return openTemp(t) })
}

func TestMemoryBudgets(t *testing.T) {
	storetest.RunBudgets(t, func(t *testing.T) storetest.BudgetStore { return store.NewMemory() })
}
