package sqlite

import (
	"testing"

	"medserve/internal/store"
	"medserve/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, _ := openTemp(t)
		return db
	})
}
