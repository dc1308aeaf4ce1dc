package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"medserve/internal/store"
)

// stages are the registry's stages (the tables check them too); the live
// ones hold at most one version of a name each.
var stages = map[string]struct{ live bool }{
	"candidate": {}, "shadow": {live: true}, "canary": {live: true}, "production": {live: true}, "retired": {},
}

// checkStage rejects an unknown stage, a percent outside 0–100, and a
// percent on any stage but canary, before the request reaches the tables.
func checkStage(stage string, percent int) error {
	if _, ok := stages[stage]; !ok {
		return fmt.Errorf("unknown stage %q (want candidate, shadow, canary, production or retired)", stage)
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("percent %d outside 0–100", percent)
	}
	if percent != 0 && stage != "canary" {
		return fmt.Errorf("percent %d given for stage %s: only a canary takes a share of traffic", percent, stage)
	}
	return nil
}

// displacedReason is the reason recorded for the version a SetStage
// retires: which version replaced it, and why that one moved.
func displacedReason(by, reason string) string {
	if reason == "" {
		return "replaced by " + by
	}
	return "replaced by " + by + ": " + reason
}

// registryKey maps a model name to the advisory lock SetStage holds for
// its transaction, derived as singletonKey is but under its own prefix, so
// it never shares a key with a job.
func registryKey(name string) int64 {
	sum := sha256.Sum256([]byte("medserve registry " + name))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

const modelColumns = `name, version, path, sha256, stage, percent, validated, created_at`

func scanModel(row pgx.Row) (store.ModelRecord, error) {
	var m store.ModelRecord
	if err := row.Scan(&m.Name, &m.Version, &m.Path, &m.SHA256, &m.Stage, &m.Percent, &m.Validated, &m.CreatedAt); err != nil {
		return store.ModelRecord{}, err
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

// RegisterModel stores m as a candidate unless its (name, version) is
// stored already, and returns the stored record either way; a stored
// record with another SHA256 is an error. m's Stage and Percent are
// ignored; a zero CreatedAt is set to now.
//
// Replicas registering the same version at once are safe: the insert of
// the later one waits for the earlier one's and does nothing, and its read
// (a new statement, so a new snapshot) sees the row that won.
func (d *DB) RegisterModel(ctx context.Context, m store.ModelRecord) (store.ModelRecord, error) {
	if m.Name == "" || m.Version == "" || m.SHA256 == "" {
		return store.ModelRecord{}, fmt.Errorf("postgres: register model: name, version and sha256 are required")
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	// Truncated here, not rounded by the server, so the time read back is
	// the one SQLite would return for the same version.
	created := m.CreatedAt.UTC().Truncate(time.Microsecond)
	if _, err := d.pool.Exec(ctx, `INSERT INTO models (name, version, path, sha256, stage, percent, validated, created_at)
		VALUES ($1,$2,$3,$4,'candidate',0,$5,$6) ON CONFLICT (name, version) DO NOTHING`,
		m.Name, m.Version, m.Path, m.SHA256, m.Validated, created); err != nil {
		return store.ModelRecord{}, fmt.Errorf("postgres: register model: %w", err)
	}
	got, err := scanModel(d.pool.QueryRow(ctx, `SELECT `+modelColumns+` FROM models WHERE name = $1 AND version = $2`,
		m.Name, m.Version))
	if err != nil {
		return store.ModelRecord{}, fmt.Errorf("postgres: register model: %w", err)
	}
	if got.SHA256 != m.SHA256 {
		return store.ModelRecord{}, fmt.Errorf("postgres: register model %s version %s: stored with SHA-256 %s, not %s (a version's files never change)",
			m.Name, m.Version, got.SHA256, m.SHA256)
	}
	return got, nil
}

// Models returns name's versions in the order they were registered.
func (d *DB) Models(ctx context.Context, name string) ([]store.ModelRecord, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+modelColumns+` FROM models WHERE name = $1 ORDER BY created_at, id`, name)
	if err != nil {
		return nil, fmt.Errorf("postgres: models: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ModelRecord, error) {
		return scanModel(row)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: models: %w", err)
	}
	if len(out) == 0 {
		return nil, nil // as sqlite: no versions is a nil slice
	}
	return out, nil
}

// SetStage moves name's version to stage (percent is a canary's share of
// traffic) and records the change. Moving to shadow, canary or production
// first retires the version of name in that stage, recorded with the same
// actor and time and the reason "replaced by <version>[: reason]". A
// request that changes neither stage nor percent records nothing. A zero
// at is set to now.
//
// Replicas may promote at once: the transaction first takes an advisory
// lock keyed by name, so SetStage calls for one name run one after another
// across every replica, and each later one (its statements reading afresh
// in READ COMMITTED) sees the stages the earlier one left. The unique
// index idx_models_one_per_stage backs this up.
func (d *DB) SetStage(ctx context.Context, name, version, stage string, percent int, actor, reason string, at time.Time) error {
	if err := checkStage(stage, percent); err != nil {
		return fmt.Errorf("postgres: set stage: %w", err)
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, registryKey(name)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var id int64
		var from string
		var fromPercent int
		err := tx.QueryRow(ctx, `SELECT id, stage, percent FROM models WHERE name = $1 AND version = $2`,
			name, version).Scan(&id, &from, &fromPercent)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s version %s: %w", name, version, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if from == stage && fromPercent == percent {
			return nil
		}
		record := func(modelID int64, from, to string, percent int, reason string) error {
			_, err := tx.Exec(ctx, `INSERT INTO promotions (model_id, from_stage, to_stage, percent, actor, reason, time)
				VALUES ($1,$2,$3,$4,$5,$6,$7)`, modelID, from, to, percent, actor, reason, at)
			return err
		}
		if stages[stage].live && from != stage {
			var other int64
			err := tx.QueryRow(ctx, `UPDATE models SET stage = 'retired', percent = 0
				WHERE name = $1 AND stage = $2 RETURNING id`, name, stage).Scan(&other)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return fmt.Errorf("retire the %s version: %w", stage, err)
			default:
				if err := record(other, stage, "retired", 0, displacedReason(version, reason)); err != nil {
					return err
				}
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE models SET stage = $1, percent = $2 WHERE id = $3`, stage, percent, id); err != nil {
			return err
		}
		return record(id, from, stage, percent, reason)
	})
	if err != nil {
		return fmt.Errorf("postgres: set stage: %w", err)
	}
	return nil
}

// Promotions returns the stage changes of name's versions, oldest first
// (changes made together keep the order they were made in).
func (d *DB) Promotions(ctx context.Context, name string) ([]store.Promotion, error) {
	rows, err := d.pool.Query(ctx, `SELECT m.name, m.version, p.from_stage, p.to_stage, p.percent, p.actor, p.reason, p.time
		FROM promotions p JOIN models m ON m.id = p.model_id
		WHERE m.name = $1 ORDER BY p.time, p.id`, name)
	if err != nil {
		return nil, fmt.Errorf("postgres: promotions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Promotion, error) {
		var p store.Promotion
		if err := row.Scan(&p.Name, &p.Version, &p.From, &p.To, &p.Percent, &p.Actor, &p.Reason, &p.Time); err != nil {
			return store.Promotion{}, err
		}
		p.Time = p.Time.UTC()
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: promotions: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
