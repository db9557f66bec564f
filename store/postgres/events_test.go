package postgres

import (
	"context"
	"testing"

	"github.com/lgx-run/lgx/store/storetest"
)

func TestEvents(t *testing.T) {
	testURL(t)
	storetest.RunEvents(t, func(t *testing.T) storetest.EventStore {
		s, err := Open(context.Background(), freshSchema(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
