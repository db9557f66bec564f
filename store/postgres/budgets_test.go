package postgres

import (
	"context"
	"testing"

	"github.com/lgx-run/lgx/store/storetest"
)

func TestBudgets(t *testing.T) {
	testURL(t)
	storetest.RunBudgets(t, func(t *testing.T) storetest.BudgetStore {
		s, err := Open(context.Background(), freshSchema(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
