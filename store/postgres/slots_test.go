package postgres

import (
	"context"
	"testing"

	"github.com/lgx-run/lgx/store/storetest"
)

func TestSlots(t *testing.T) {
	testURL(t)
	storetest.RunSlots(t, func(t *testing.T) storetest.SlotStore {
		s, err := Open(context.Background(), freshSchema(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
