package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"medserve/internal/store"
)

// oneUnresolvedIndex is the partial unique index that keeps at most one
// unresolved alert per fingerprint (0005_monitoring.sql).
const oneUnresolvedIndex = "idx_alerts_one_unresolved"

// micro is t as the store keeps it: UTC, truncated to the microsecond here
// rather than left to the encoder, so every backend keeps the same instant.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// microPtr is micro for an optional time.
func microPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := micro(*t)
	return &v
}

// utcPtr returns a read optional time in UTC.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// nullID is id, or NULL for 0 (no referenced row).
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// Outcomes returns the feedback given at or after since joined to the
// query it is about, oldest feedback first (ties by request id). The
// findings are the query's stored document, as PatientHistory returns it.
func (d *DB) Outcomes(ctx context.Context, since time.Time) ([]store.Outcome, error) {
	rows, err := d.pool.Query(ctx, `SELECT f.request_id, q.time, f.time, q.model_version, q.domain,
		q.acuity, f.true_acuity, q.findings::text, COALESCE(q.top_diagnosis, ''), f.confirmed_diagnosis,
		q.interaction_alerts, f.interaction_confirmed
		FROM feedback f JOIN queries q ON q.request_id = f.request_id
		WHERE f.time >= $1
		ORDER BY f.time, f.request_id COLLATE "C"`, store.CeilMicro(since))
	if err != nil {
		return nil, fmt.Errorf("postgres: outcomes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Outcome, error) {
		var o store.Outcome
		err := row.Scan(&o.RequestID, &o.AnsweredAt, &o.FeedbackAt, &o.ModelVersion, &o.Domain,
			&o.Acuity, &o.TrueAcuity, &o.FindingsJSON, &o.TopDiagnosis, &o.ConfirmedDiagnosis,
			&o.InteractionAlerts, &o.InteractionConfirmed)
		o.AnsweredAt, o.FeedbackAt = o.AnsweredAt.UTC(), o.FeedbackAt.UTC()
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: outcomes: %w", err)
	}
	if len(out) == 0 {
		return nil, nil // as sqlite
	}
	return out, nil
}

const alertColumns = `id, rule, fingerprint, severity, state, labels::text, summary, value, threshold,
	started_at, fired_at, resolved_at, updated_at, COALESCE(incident_id, 0)`

func scanAlert(row pgx.Row) (store.Alert, error) {
	var a store.Alert
	var labels string
	if err := row.Scan(&a.ID, &a.Rule, &a.Fingerprint, &a.Severity, &a.State, &labels, &a.Summary,
		&a.Value, &a.Threshold, &a.StartedAt, &a.FiredAt, &a.ResolvedAt, &a.UpdatedAt, &a.IncidentID); err != nil {
		return store.Alert{}, err
	}
	var err error
	if a.Labels, err = store.ParseLabels(labels); err != nil {
		return store.Alert{}, err
	}
	a.StartedAt, a.UpdatedAt = a.StartedAt.UTC(), a.UpdatedAt.UTC()
	a.FiredAt, a.ResolvedAt = utcPtr(a.FiredAt), utcPtr(a.ResolvedAt)
	return a, nil
}

// SaveAlert inserts a (ID 0) or updates the alert with a's ID, and returns
// it as stored. An insert or update that would leave two unresolved alerts
// with one fingerprint fails with store.ErrConflict: the partial unique
// index idx_alerts_one_unresolved decides, so replicas evaluating the same
// rule at once cannot both open one (the second insert waits for the first
// and then fails). Updating an unknown ID is store.ErrNotFound.
// IncidentID 0 stores no incident.
func (d *DB) SaveAlert(ctx context.Context, a store.Alert) (store.Alert, error) {
	if err := store.CheckAlert(a); err != nil {
		return store.Alert{}, fmt.Errorf("postgres: save alert: %w", err)
	}
	labels, err := store.LabelsJSON(a.Labels)
	if err != nil {
		return store.Alert{}, fmt.Errorf("postgres: save alert: %w", err)
	}
	args := []any{a.Rule, a.Fingerprint, a.Severity, a.State, labels, a.Summary, a.Value, a.Threshold,
		micro(a.StartedAt), microPtr(a.FiredAt), microPtr(a.ResolvedAt), micro(a.UpdatedAt), nullID(a.IncidentID)}
	var row pgx.Row
	if a.ID == 0 {
		row = d.pool.QueryRow(ctx, `INSERT INTO alerts (rule, fingerprint, severity, state, labels, summary,
			value, threshold, started_at, fired_at, resolved_at, updated_at, incident_id)
			VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING `+alertColumns, args...)
	} else {
		row = d.pool.QueryRow(ctx, `UPDATE alerts SET rule = $1, fingerprint = $2, severity = $3, state = $4,
			labels = $5::jsonb, summary = $6, value = $7, threshold = $8, started_at = $9, fired_at = $10,
			resolved_at = $11, updated_at = $12, incident_id = $13
			WHERE id = $14 RETURNING `+alertColumns, append(args, a.ID)...)
	}
	got, err := scanAlert(row)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return got, nil
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.ConstraintName == oneUnresolvedIndex:
		return store.Alert{}, fmt.Errorf("postgres: save alert: an unresolved alert with fingerprint %q exists: %w",
			a.Fingerprint, store.ErrConflict)
	case errors.Is(err, pgx.ErrNoRows):
		return store.Alert{}, fmt.Errorf("postgres: save alert %d: %w", a.ID, store.ErrNotFound)
	default:
		return store.Alert{}, fmt.Errorf("postgres: save alert: %w", err)
	}
}

// Alerts returns the alerts matching f, newest StartedAt first (ties:
// newest ID first), at most store.ListLimit(f.Limit).
func (d *DB) Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	where := []string{"true"}
	var args []any
	if states := store.AlertStates(f.State); states != nil {
		args = append(args, states)
		where = append(where, "state = ANY($"+strconv.Itoa(len(args))+")")
	}
	if !f.Since.IsZero() {
		args = append(args, store.CeilMicro(f.Since))
		where = append(where, "started_at >= $"+strconv.Itoa(len(args)))
	}
	args = append(args, store.ListLimit(f.Limit))
	rows, err := d.pool.Query(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE `+strings.Join(where, " AND ")+` ORDER BY started_at DESC, id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Alert, error) { return scanAlert(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: alerts: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// incidentColumns reads the report as text: jsonb keeps the document, not
// its spelling (spacing and key order may differ from what was written).
const incidentColumns = `id, COALESCE(alert_id, 0), rule, title, severity, status, report::text, opened_at, closed_at`

func scanIncident(row pgx.Row) (store.Incident, error) {
	var in store.Incident
	if err := row.Scan(&in.ID, &in.AlertID, &in.Rule, &in.Title, &in.Severity, &in.Status, &in.Report,
		&in.OpenedAt, &in.ClosedAt); err != nil {
		return store.Incident{}, err
	}
	in.OpenedAt, in.ClosedAt = in.OpenedAt.UTC(), utcPtr(in.ClosedAt)
	return in, nil
}

// SaveIncident inserts in (ID 0) or updates the incident with in's ID, and
// returns it as stored; updating an unknown ID is store.ErrNotFound. An
// empty Report is stored as "{}"; AlertID 0 refers to no alert.
func (d *DB) SaveIncident(ctx context.Context, in store.Incident) (store.Incident, error) {
	args := []any{nullID(in.AlertID), in.Rule, in.Title, in.Severity, in.Status, store.OrEmptyObject(in.Report),
		micro(in.OpenedAt), microPtr(in.ClosedAt)}
	var row pgx.Row
	if in.ID == 0 {
		row = d.pool.QueryRow(ctx, `INSERT INTO incidents (alert_id, rule, title, severity, status, report,
			opened_at, closed_at) VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8) RETURNING `+incidentColumns, args...)
	} else {
		row = d.pool.QueryRow(ctx, `UPDATE incidents SET alert_id = $1, rule = $2, title = $3, severity = $4,
			status = $5, report = $6::jsonb, opened_at = $7, closed_at = $8
			WHERE id = $9 RETURNING `+incidentColumns, append(args, in.ID)...)
	}
	got, err := scanIncident(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Incident{}, fmt.Errorf("postgres: save incident %d: %w", in.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Incident{}, fmt.Errorf("postgres: save incident: %w", err)
	}
	return got, nil
}

// Incident returns the incident with the given id; store.ErrNotFound when there is none.
func (d *DB) Incident(ctx context.Context, id int64) (store.Incident, error) {
	in, err := scanIncident(d.pool.QueryRow(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Incident{}, fmt.Errorf("postgres: incident %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Incident{}, fmt.Errorf("postgres: incident %d: %w", id, err)
	}
	return in, nil
}

// Incidents returns the newest incidents first (by OpenedAt, then ID), at most store.ListLimit(limit).
func (d *DB) Incidents(ctx context.Context, limit int) ([]store.Incident, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+incidentColumns+` FROM incidents
		ORDER BY opened_at DESC, id DESC LIMIT $1`, store.ListLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: incidents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Incident, error) { return scanIncident(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: incidents: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// SetMode stores m, replacing the mode of the same name. A zero UpdatedAt is set to now.
func (d *DB) SetMode(ctx context.Context, m store.Mode) error {
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = time.Now()
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO modes (name, enabled, reason, actor, updated_at) VALUES ($1,$2,$3,$4,$5)
		ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, reason = excluded.reason,
			actor = excluded.actor, updated_at = excluded.updated_at`,
		m.Name, m.Enabled, m.Reason, m.Actor, micro(m.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres: set mode %q: %w", m.Name, err)
	}
	return nil
}

// Modes returns every mode ever set, by name (in byte order, as sqlite).
func (d *DB) Modes(ctx context.Context) ([]store.Mode, error) {
	rows, err := d.pool.Query(ctx, `SELECT name, enabled, reason, actor, updated_at FROM modes ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: modes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Mode, error) {
		var m store.Mode
		err := row.Scan(&m.Name, &m.Enabled, &m.Reason, &m.Actor, &m.UpdatedAt)
		m.UpdatedAt = m.UpdatedAt.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: modes: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// SaveMonitorCounts upserts cs in one statement (so in one transaction): a
// figure already stored for its (replica, bucket, version, domain, name)
// takes the new value. Of two in cs with one key the later wins, as in
// sqlite; DISTINCT ON keeps only it, because one INSERT … ON CONFLICT may
// not update a row twice.
func (d *DB) SaveMonitorCounts(ctx context.Context, cs []store.MonitorCount) error {
	if len(cs) == 0 {
		return nil
	}
	n := len(cs)
	replicas, versions, domains, names := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	buckets, values := make([]time.Time, n), make([]float64, n)
	for i, c := range cs {
		replicas[i], buckets[i], versions[i], domains[i], names[i], values[i] =
			c.Replica, micro(c.Bucket), c.Version, c.Domain, c.Name, c.Value
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO monitor_counts (replica, bucket, version, domain, name, value)
		SELECT DISTINCT ON (replica, bucket, version, domain, name) replica, bucket, version, domain, name, value
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::float8[])
			WITH ORDINALITY AS u(replica, bucket, version, domain, name, value, ord)
		ORDER BY replica, bucket, version, domain, name, ord DESC
		ON CONFLICT (replica, bucket, version, domain, name) DO UPDATE SET value = excluded.value`,
		replicas, buckets, versions, domains, names, values)
	if err != nil {
		return fmt.Errorf("postgres: save monitor counts: %w", err)
	}
	return nil
}

// MonitorTotals returns, per (version, domain, name), the sum and the
// maximum of the figures in buckets at or after since, over every replica,
// ordered by version, domain and name (in byte order, as sqlite).
func (d *DB) MonitorTotals(ctx context.Context, since time.Time) ([]store.MonitorTotal, error) {
	rows, err := d.pool.Query(ctx, `SELECT version, domain, name, sum(value), max(value)
		FROM monitor_counts WHERE bucket >= $1
		GROUP BY version, domain, name
		ORDER BY version COLLATE "C", domain COLLATE "C", name COLLATE "C"`, store.CeilMicro(since))
	if err != nil {
		return nil, fmt.Errorf("postgres: monitor totals: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.MonitorTotal, error) {
		var m store.MonitorTotal
		err := row.Scan(&m.Version, &m.Domain, &m.Name, &m.Sum, &m.Max)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: monitor totals: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// DeleteMonitorCountsBefore deletes the figures of buckets that start
// before t and returns how many it deleted. One statement: PostgreSQL
// locks only the rows it deletes, so other writers are not held up.
func (d *DB) DeleteMonitorCountsBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := d.pool.Exec(ctx, `DELETE FROM monitor_counts WHERE bucket < $1`, store.CeilMicro(t))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete monitor counts: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Reconcile counts the queries with from ≤ time < to and those of them
// that no audit event names by request id (whatever its outcome), in one
// statement: idx_queries_time selects the window and idx_audit_request
// answers each NOT EXISTS.
func (d *DB) Reconcile(ctx context.Context, from, to time.Time) (store.Reconciliation, error) {
	var r store.Reconciliation
	err := d.pool.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.request_id = q.request_id))
		FROM queries q WHERE q.time >= $1 AND q.time < $2`,
		store.CeilMicro(from), store.CeilMicro(to)).Scan(&r.Queries, &r.Unaudited)
	if err != nil {
		return store.Reconciliation{}, fmt.Errorf("postgres: reconcile: %w", err)
	}
	return r, nil
}
