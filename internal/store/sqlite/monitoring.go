package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"medserve/internal/store"
)

// Outcomes returns the feedback given at or after since joined to the
// query it is about, oldest feedback first (ties by request id). The
// findings are the query's stored document, as PatientHistory returns it.
func (d *DB) Outcomes(ctx context.Context, since time.Time) ([]store.Outcome, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT f.request_id, q.time, f.time, q.model_version, q.domain,
		q.acuity, f.true_acuity, q.findings, COALESCE(q.top_diagnosis, ''), f.confirmed_diagnosis,
		q.interaction_alerts, f.interaction_confirmed
		FROM feedback f JOIN queries q ON q.request_id = f.request_id
		WHERE f.time >= ?
		ORDER BY f.time, f.request_id`, micros(store.CeilMicro(since)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: outcomes: %w", err)
	}
	defer rows.Close()
	var out []store.Outcome
	for rows.Next() {
		var o store.Outcome
		var answered, given int64
		var confirmed sql.NullBool
		if err := rows.Scan(&o.RequestID, &answered, &given, &o.ModelVersion, &o.Domain,
			&o.Acuity, &o.TrueAcuity, &o.FindingsJSON, &o.TopDiagnosis, &o.ConfirmedDiagnosis,
			&o.InteractionAlerts, &confirmed); err != nil {
			return nil, fmt.Errorf("sqlite: outcomes: %w", err)
		}
		o.AnsweredAt, o.FeedbackAt = fromMicros(answered), fromMicros(given)
		if confirmed.Valid {
			o.InteractionConfirmed = &confirmed.Bool
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: outcomes: %w", err)
	}
	return out, nil
}

// nullMicros is t in µs, or NULL for a nil t.
func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

// timeOf returns the time of a nullable µs column, nil for NULL.
func timeOf(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// nullID is id, or NULL for 0 (no referenced row).
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// isUnique reports whether err is a UNIQUE (or primary key) constraint failure.
func isUnique(err error) bool {
	var e interface{ Code() int }
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

const alertColumns = `id, rule, fingerprint, severity, state, labels, summary, value, threshold,
	started_at, fired_at, resolved_at, updated_at, COALESCE(incident_id, 0)`

func scanAlert(scan func(dest ...any) error) (store.Alert, error) {
	var a store.Alert
	var labels string
	var started, updated int64
	var fired, resolved sql.NullInt64
	if err := scan(&a.ID, &a.Rule, &a.Fingerprint, &a.Severity, &a.State, &labels, &a.Summary,
		&a.Value, &a.Threshold, &started, &fired, &resolved, &updated, &a.IncidentID); err != nil {
		return store.Alert{}, err
	}
	var err error
	if a.Labels, err = store.ParseLabels(labels); err != nil {
		return store.Alert{}, err
	}
	a.StartedAt, a.UpdatedAt = fromMicros(started), fromMicros(updated)
	a.FiredAt, a.ResolvedAt = timeOf(fired), timeOf(resolved)
	return a, nil
}

// SaveAlert inserts a (ID 0) or updates the alert with a's ID, and returns
// it as stored. An insert or update that would leave two unresolved alerts
// with one fingerprint fails with store.ErrConflict (the partial unique
// index idx_alerts_one_unresolved decides); updating an unknown ID is
// store.ErrNotFound. IncidentID 0 stores no incident.
func (d *DB) SaveAlert(ctx context.Context, a store.Alert) (store.Alert, error) {
	if err := store.CheckAlert(a); err != nil {
		return store.Alert{}, fmt.Errorf("sqlite: save alert: %w", err)
	}
	labels, err := store.LabelsJSON(a.Labels)
	if err != nil {
		return store.Alert{}, fmt.Errorf("sqlite: save alert: %w", err)
	}
	args := []any{a.Rule, a.Fingerprint, a.Severity, a.State, labels, a.Summary, a.Value, a.Threshold,
		micros(a.StartedAt), nullMicros(a.FiredAt), nullMicros(a.ResolvedAt), micros(a.UpdatedAt), nullID(a.IncidentID)}
	var row *sql.Row
	if a.ID == 0 {
		row = d.db.QueryRowContext(ctx, `INSERT INTO alerts (rule, fingerprint, severity, state, labels, summary,
			value, threshold, started_at, fired_at, resolved_at, updated_at, incident_id)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING `+alertColumns, args...)
	} else {
		row = d.db.QueryRowContext(ctx, `UPDATE alerts SET rule = ?, fingerprint = ?, severity = ?, state = ?,
			labels = ?, summary = ?, value = ?, threshold = ?, started_at = ?, fired_at = ?, resolved_at = ?,
			updated_at = ?, incident_id = ? WHERE id = ? RETURNING `+alertColumns, append(args, a.ID)...)
	}
	got, err := scanAlert(row.Scan)
	switch {
	case err == nil:
		return got, nil
	case isUnique(err):
		return store.Alert{}, fmt.Errorf("sqlite: save alert: an unresolved alert with fingerprint %q exists: %w",
			a.Fingerprint, store.ErrConflict)
	case errors.Is(err, sql.ErrNoRows):
		return store.Alert{}, fmt.Errorf("sqlite: save alert %d: %w", a.ID, store.ErrNotFound)
	default:
		return store.Alert{}, fmt.Errorf("sqlite: save alert: %w", err)
	}
}

// Alerts returns the alerts matching f, newest StartedAt first (ties:
// newest ID first), at most store.ListLimit(f.Limit).
func (d *DB) Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	where := []string{"1 = 1"}
	var args []any
	if states := store.AlertStates(f.State); states != nil {
		in, a := inList(states)
		where = append(where, "state IN ("+in+")")
		args = append(args, a...)
	}
	if !f.Since.IsZero() {
		where = append(where, "started_at >= ?")
		args = append(args, micros(store.CeilMicro(f.Since)))
	}
	args = append(args, store.ListLimit(f.Limit))
	rows, err := d.db.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE `+strings.Join(where, " AND ")+` ORDER BY started_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: alerts: %w", err)
	}
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		a, err := scanAlert(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: alerts: %w", err)
	}
	return out, nil
}

const incidentColumns = `id, COALESCE(alert_id, 0), rule, title, severity, status, report, opened_at, closed_at`

func scanIncident(scan func(dest ...any) error) (store.Incident, error) {
	var in store.Incident
	var opened int64
	var closed sql.NullInt64
	if err := scan(&in.ID, &in.AlertID, &in.Rule, &in.Title, &in.Severity, &in.Status, &in.Report,
		&opened, &closed); err != nil {
		return store.Incident{}, err
	}
	in.OpenedAt, in.ClosedAt = fromMicros(opened), timeOf(closed)
	return in, nil
}

// SaveIncident inserts in (ID 0) or updates the incident with in's ID, and
// returns it as stored; updating an unknown ID is store.ErrNotFound. An
// empty Report is stored as "{}"; AlertID 0 refers to no alert.
func (d *DB) SaveIncident(ctx context.Context, in store.Incident) (store.Incident, error) {
	args := []any{nullID(in.AlertID), in.Rule, in.Title, in.Severity, in.Status, store.OrEmptyObject(in.Report),
		micros(in.OpenedAt), nullMicros(in.ClosedAt)}
	var row *sql.Row
	if in.ID == 0 {
		row = d.db.QueryRowContext(ctx, `INSERT INTO incidents (alert_id, rule, title, severity, status, report,
			opened_at, closed_at) VALUES (?,?,?,?,?,?,?,?) RETURNING `+incidentColumns, args...)
	} else {
		row = d.db.QueryRowContext(ctx, `UPDATE incidents SET alert_id = ?, rule = ?, title = ?, severity = ?,
			status = ?, report = ?, opened_at = ?, closed_at = ? WHERE id = ? RETURNING `+incidentColumns,
			append(args, in.ID)...)
	}
	got, err := scanIncident(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Incident{}, fmt.Errorf("sqlite: save incident %d: %w", in.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Incident{}, fmt.Errorf("sqlite: save incident: %w", err)
	}
	return got, nil
}

// Incident returns the incident with the given id; store.ErrNotFound when there is none.
func (d *DB) Incident(ctx context.Context, id int64) (store.Incident, error) {
	in, err := scanIncident(d.db.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = ?`, id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Incident{}, fmt.Errorf("sqlite: incident %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Incident{}, fmt.Errorf("sqlite: incident %d: %w", id, err)
	}
	return in, nil
}

// Incidents returns the newest incidents first (by OpenedAt, then ID), at most store.ListLimit(limit).
func (d *DB) Incidents(ctx context.Context, limit int) ([]store.Incident, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+incidentColumns+` FROM incidents
		ORDER BY opened_at DESC, id DESC LIMIT ?`, store.ListLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: incidents: %w", err)
	}
	defer rows.Close()
	var out []store.Incident
	for rows.Next() {
		in, err := scanIncident(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: incidents: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: incidents: %w", err)
	}
	return out, nil
}

// SetMode stores m, replacing the mode of the same name. A zero UpdatedAt is set to now.
func (d *DB) SetMode(ctx context.Context, m store.Mode) error {
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = time.Now()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO modes (name, enabled, reason, actor, updated_at) VALUES (?,?,?,?,?)
		ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, reason = excluded.reason,
			actor = excluded.actor, updated_at = excluded.updated_at`,
		m.Name, m.Enabled, m.Reason, m.Actor, micros(m.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: set mode %q: %w", m.Name, err)
	}
	return nil
}

// Modes returns every mode ever set, by name.
func (d *DB) Modes(ctx context.Context) ([]store.Mode, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, enabled, reason, actor, updated_at FROM modes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: modes: %w", err)
	}
	defer rows.Close()
	var out []store.Mode
	for rows.Next() {
		var m store.Mode
		var at int64
		if err := rows.Scan(&m.Name, &m.Enabled, &m.Reason, &m.Actor, &at); err != nil {
			return nil, fmt.Errorf("sqlite: modes: %w", err)
		}
		m.UpdatedAt = fromMicros(at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: modes: %w", err)
	}
	return out, nil
}

// SaveMonitorCounts upserts cs in one transaction: a figure already stored
// for its (replica, bucket, version, domain, name) takes the new value, and
// of two in cs with one key the later wins.
func (d *DB) SaveMonitorCounts(ctx context.Context, cs []store.MonitorCount) error {
	if len(cs) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: save monitor counts: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO monitor_counts (replica, bucket, version, domain, name, value)
		VALUES (?,?,?,?,?,?)
		ON CONFLICT (replica, bucket, version, domain, name) DO UPDATE SET value = excluded.value`)
	if err != nil {
		return fmt.Errorf("sqlite: save monitor counts: %w", err)
	}
	defer ins.Close()
	for _, c := range cs {
		if _, err := ins.ExecContext(ctx, c.Replica, micros(c.Bucket), c.Version, c.Domain, c.Name, c.Value); err != nil {
			return fmt.Errorf("sqlite: save monitor counts: %s %s: %w", c.Replica, c.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: save monitor counts: %w", err)
	}
	return nil
}

// MonitorTotals returns, per (version, domain, name), the sum and the
// maximum of the figures in buckets at or after since, over every replica,
// ordered by version, domain and name.
func (d *DB) MonitorTotals(ctx context.Context, since time.Time) ([]store.MonitorTotal, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT version, domain, name, SUM(value), MAX(value)
		FROM monitor_counts WHERE bucket >= ?
		GROUP BY version, domain, name ORDER BY version, domain, name`, micros(store.CeilMicro(since)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: monitor totals: %w", err)
	}
	defer rows.Close()
	var out []store.MonitorTotal
	for rows.Next() {
		var m store.MonitorTotal
		if err := rows.Scan(&m.Version, &m.Domain, &m.Name, &m.Sum, &m.Max); err != nil {
			return nil, fmt.Errorf("sqlite: monitor totals: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: monitor totals: %w", err)
	}
	return out, nil
}

// DeleteMonitorCountsBefore deletes the figures of buckets that start
// before t, in chunks of deleteChunk (as DeleteQueriesBefore, so other
// writers get the lock in between), and returns how many it deleted.
func (d *DB) DeleteMonitorCountsBefore(ctx context.Context, t time.Time) (int64, error) {
	return d.deleteBefore(ctx, "monitor_counts", "bucket", t, deleteChunk)
}

// Reconcile counts the queries with from ≤ time < to and those of them
// that no audit event names by request id (whatever its outcome), in one
// statement: idx_queries_time selects the window and idx_audit_request
// answers each NOT EXISTS.
func (d *DB) Reconcile(ctx context.Context, from, to time.Time) (store.Reconciliation, error) {
	var r store.Reconciliation
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*),
		COALESCE(SUM(NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.request_id = q.request_id)), 0)
		FROM queries q WHERE q.time >= ? AND q.time < ?`,
		micros(store.CeilMicro(from)), micros(store.CeilMicro(to))).Scan(&r.Queries, &r.Unaudited)
	if err != nil {
		return store.Reconciliation{}, fmt.Errorf("sqlite: reconcile: %w", err)
	}
	return r, nil
}
