package store

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"medserve/internal/audit"
)

// Migration is one versioned schema migration embedded in a backend.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations returns the migrations in dir of fsys ordered by version;
// files are named NNNN_description.sql and versions must be unique. Both
// backends number their migrations alike, so one reader serves them.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]string{}
	for _, p := range names {
		base := path.Base(p)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, base, v)
		}
		seen[v] = base
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// RangePages implements audit.Storage's Range over a backend that reads
// events a page at a time: page returns at most pageSize events with
// from ≤ seq ≤ to in order. Each page is fully read before fn runs, so a
// walk over a long chain neither holds it all in memory nor keeps a
// connection or snapshot open while fn runs, and fn may call back into the
// store.
func RangePages(ctx context.Context, from, to int64, pageSize int, page func(ctx context.Context, from, to int64) ([]audit.Event, error), fn func(audit.Event) error) error {
	next := from
	for next <= to {
		events, err := page(ctx, next, to)
		if err != nil {
			return err
		}
		for _, e := range events {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(events) < pageSize {
			return nil
		}
		last := events[len(events)-1].Seq
		if last == to { // also avoids overflow when to is math.MaxInt64
			return nil
		}
		next = last + 1
	}
	return nil
}
