package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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

const modelColumns = `name, version, path, sha256, stage, percent, validated, created_at`

func scanModel(scan func(dest ...any) error) (store.ModelRecord, error) {
	var m store.ModelRecord
	var created int64
	if err := scan(&m.Name, &m.Version, &m.Path, &m.SHA256, &m.Stage, &m.Percent, &m.Validated, &created); err != nil {
		return store.ModelRecord{}, err
	}
	m.CreatedAt = fromMicros(created)
	return m, nil
}

// RegisterModel stores m as a candidate unless its (name, version) is
// stored already, and returns the stored record either way; a stored
// record with another SHA256 is an error. m's Stage and Percent are
// ignored; a zero CreatedAt is set to now.
func (d *DB) RegisterModel(ctx context.Context, m store.ModelRecord) (store.ModelRecord, error) {
	if m.Name == "" || m.Version == "" || m.SHA256 == "" {
		return store.ModelRecord{}, fmt.Errorf("sqlite: register model: name, version and sha256 are required")
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.ModelRecord{}, fmt.Errorf("sqlite: register model: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO models (name, version, path, sha256, stage, percent, validated, created_at)
		VALUES (?,?,?,?,'candidate',0,?,?) ON CONFLICT (name, version) DO NOTHING`,
		m.Name, m.Version, m.Path, m.SHA256, m.Validated, micros(m.CreatedAt)); err != nil {
		return store.ModelRecord{}, fmt.Errorf("sqlite: register model: %w", err)
	}
	got, err := scanModel(tx.QueryRowContext(ctx, `SELECT `+modelColumns+` FROM models WHERE name = ? AND version = ?`,
		m.Name, m.Version).Scan)
	if err != nil {
		return store.ModelRecord{}, fmt.Errorf("sqlite: register model: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.ModelRecord{}, fmt.Errorf("sqlite: register model: %w", err)
	}
	if got.SHA256 != m.SHA256 {
		return store.ModelRecord{}, fmt.Errorf("sqlite: register model %s version %s: stored with SHA-256 %s, not %s (a version's files never change)",
			m.Name, m.Version, got.SHA256, m.SHA256)
	}
	return got, nil
}

// Models returns name's versions in the order they were registered.
func (d *DB) Models(ctx context.Context, name string) ([]store.ModelRecord, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+modelColumns+` FROM models WHERE name = ? ORDER BY created_at, id`, name)
	if err != nil {
		return nil, fmt.Errorf("sqlite: models: %w", err)
	}
	defer rows.Close()
	var out []store.ModelRecord
	for rows.Next() {
		m, err := scanModel(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: models: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: models: %w", err)
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
// The transaction is IMMEDIATE (see Open), so it holds the write lock from
// its first read: two SetStage calls cannot both see the same incumbent.
func (d *DB) SetStage(ctx context.Context, name, version, stage string, percent int, actor, reason string, at time.Time) error {
	if err := checkStage(stage, percent); err != nil {
		return fmt.Errorf("sqlite: set stage: %w", err)
	}
	if at.IsZero() {
		at = time.Now()
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: set stage: %w", err)
	}
	defer tx.Rollback()
	var id int64
	var from string
	var fromPercent int
	err = tx.QueryRowContext(ctx, `SELECT id, stage, percent FROM models WHERE name = ? AND version = ?`,
		name, version).Scan(&id, &from, &fromPercent)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: set stage of %s version %s: %w", name, version, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set stage: %w", err)
	}
	if from == stage && fromPercent == percent {
		return nil
	}
	record := func(modelID int64, from, to string, percent int, reason string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO promotions (model_id, from_stage, to_stage, percent, actor, reason, time)
			VALUES (?,?,?,?,?,?,?)`, modelID, from, to, percent, actor, reason, micros(at))
		return err
	}
	if stages[stage].live && from != stage {
		var other int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM models WHERE name = ? AND stage = ?`, name, stage).Scan(&other)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("sqlite: set stage: %w", err)
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE models SET stage = 'retired', percent = 0 WHERE id = ?`, other); err != nil {
				return fmt.Errorf("sqlite: set stage: retire the %s version: %w", stage, err)
			}
			if err := record(other, stage, "retired", 0, displacedReason(version, reason)); err != nil {
				return fmt.Errorf("sqlite: set stage: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE models SET stage = ?, percent = ? WHERE id = ?`, stage, percent, id); err != nil {
		return fmt.Errorf("sqlite: set stage: %w", err)
	}
	if err := record(id, from, stage, percent, reason); err != nil {
		return fmt.Errorf("sqlite: set stage: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set stage: %w", err)
	}
	return nil
}

// Promotions returns the stage changes of name's versions, oldest first
// (changes made together keep the order they were made in).
func (d *DB) Promotions(ctx context.Context, name string) ([]store.Promotion, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT m.name, m.version, p.from_stage, p.to_stage, p.percent, p.actor, p.reason, p.time
		FROM promotions p JOIN models m ON m.id = p.model_id
		WHERE m.name = ? ORDER BY p.time, p.id`, name)
	if err != nil {
		return nil, fmt.Errorf("sqlite: promotions: %w", err)
	}
	defer rows.Close()
	var out []store.Promotion
	for rows.Next() {
		var p store.Promotion
		var at int64
		if err := rows.Scan(&p.Name, &p.Version, &p.From, &p.To, &p.Percent, &p.Actor, &p.Reason, &at); err != nil {
			return nil, fmt.Errorf("sqlite: promotions: %w", err)
		}
		p.Time = fromMicros(at)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: promotions: %w", err)
	}
	return out, nil
}
