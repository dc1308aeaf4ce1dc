package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"medserve/internal/audit"
	"medserve/internal/pgtest"
)

// serveAndAnswer runs a server on c, answers n queries and stops it (the
// stop flushes the spool and signs a final checkpoint).
func serveAndAnswer(t *testing.T, c serveConfig, getenv func(string) string, n int) {
	t.Helper()
	base, _, stop := startServerWith(t, c, getenv)
	for i := 0; i < n; i++ {
		code, _, body := post(t, base+"/api/v1/inference", fmt.Sprintf(`{"query": "fever and cough %d", "patient": {"id": "P-%d"}}`, i, i%4))
		if code != http.StatusOK {
			t.Fatalf("inference: %d %s", code, body)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func verifyCmd(t *testing.T, getenv func(string) string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"medserve", "audit", "verify"}, args...), getenv, &out, io.Discard)
	return out.String(), err
}

// rewrite loads every event, lets edit change the list, and stores it back
// with consistently recomputed hashes: what someone with database access
// but without the checkpoint key could do.
func rewrite(t *testing.T, db *sql.DB, edit func([]audit.Event) []audit.Event) {
	t.Helper()
	rows, err := db.Query(`SELECT seq, time, actor, role, action, resource, patient, request_id, outcome, reason FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	for rows.Next() {
		var e audit.Event
		var micros int64
		if err := rows.Scan(&e.Seq, &micros, &e.Actor, &e.Role, &e.Action, &e.Resource, &e.Patient, &e.RequestID, &e.Outcome, &e.Reason); err != nil {
			t.Fatal(err)
		}
		e.Time = fromMicrosTest(micros)
		evs = append(evs, e)
	}
	rows.Close()
	evs = edit(evs)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`DELETE FROM audit_events`); err != nil {
		t.Fatal(err)
	}
	prev := audit.Genesis
	for i := range evs {
		e := &evs[i]
		e.Seq, e.Prev = int64(i+1), prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		if _, err := tx.Exec(`INSERT INTO audit_events (seq, time, actor, role, action, resource, patient, request_id, outcome, reason, prev, hash)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`, e.Seq, e.Time.UnixMicro(), e.Actor, e.Role, e.Action, e.Resource, e.Patient, e.RequestID, e.Outcome, e.Reason, e.Prev, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyCommand: `medserve audit verify` passes an untouched
// chain and fails, naming the first bad event, after an edit, a deletion,
// a truncation and a consistent rewrite of the chain.
func TestAuditVerifyCommand(t *testing.T) {
	dataDir := t.TempDir()
	getenv := testEnv(nil)
	serveAndAnswer(t, serveConfig{dataDir: dataDir, cacheMB: 0}, getenv, 12)
	out, err := verifyCmd(t, getenv, "--data-dir", dataDir)
	if err != nil || !strings.Contains(out, "OK") || !strings.Contains(out, " 12 events") {
		t.Fatalf("untouched chain: %v\n%s", err, out)
	}

	dbPath := filepath.Join(dataDir, "medserve.db")
	pristine, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		t.Helper()
		os.Remove(dbPath + "-wal")
		os.Remove(dbPath + "-shm")
		if err := os.WriteFile(dbPath, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, want string
		tamper     func(db *sql.DB)
	}{
		{"edited actor", "first problem at event 5 (altered)", func(db *sql.DB) {
			db.Exec(`UPDATE audit_events SET actor = 'someone-else' WHERE seq = 5`)
		}},
		{"deleted event", "first problem at event 8 (gap)", func(db *sql.DB) {
			db.Exec(`DELETE FROM audit_events WHERE seq = 7`)
		}},
		{"truncated tail", "(truncated)", func(db *sql.DB) {
			db.Exec(`DELETE FROM audit_events WHERE seq > 9`)
		}},
		{"consistent rewrite", "(checkpoint-mismatch)", func(db *sql.DB) {
			rewrite(t, db, func(evs []audit.Event) []audit.Event {
				evs[2].Actor = "someone-else"
				return evs
			})
		}},
		{"consistent rewrite without event 3", "(truncated)", func(db *sql.DB) {
			rewrite(t, db, func(evs []audit.Event) []audit.Event { return append(evs[:2:2], evs[3:]...) })
		}},
		{"consistent rewrite without event 3, padded to length", "(checkpoint-mismatch)", func(db *sql.DB) {
			rewrite(t, db, func(evs []audit.Event) []audit.Event {
				pad := evs[len(evs)-1]
				pad.RequestID = "made-up"
				return append(append(evs[:2:2], evs[3:]...), pad)
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			restore()
			db, err := sql.Open("sqlite", dbPath)
			if err != nil {
				t.Fatal(err)
			}
			c.tamper(db)
			db.Close()
			out, err := verifyCmd(t, getenv, "--data-dir", dataDir)
			if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, c.want) {
				t.Fatalf("want a failure mentioning %q, got err %v\n%s", c.want, err, out)
			}
		})
	}
	restore()
	if out, err := verifyCmd(t, getenv, "--data-dir", dataDir); err != nil {
		t.Fatalf("restored chain: %v\n%s", err, out)
	}
}

// TestBackupRestoreCommands round-trips both stores through `medserve
// backup` and `medserve restore`, then checks the audit chain and a
// patient's history in the restored copy.
func TestBackupRestoreCommands(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		dataDir := t.TempDir()
		getenv := testEnv(nil)
		serveAndAnswer(t, serveConfig{dataDir: dataDir, cacheMB: 0}, getenv, 10)
		file := filepath.Join(t.TempDir(), "medserve.backup")
		var out bytes.Buffer
		if err := run(ctx, []string{"medserve", "backup", "--data-dir", dataDir, "--out", file}, getenv, &out, io.Discard); err != nil {
			t.Fatalf("backup: %v", err)
		}
		// Restore into a second data directory holding the same keys.
		other := t.TempDir()
		for _, f := range []string{phiKeyFile, auditKeyFile, checkpointsFile} {
			b, err := os.ReadFile(filepath.Join(dataDir, f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(other, f), b, 0o600)
		}
		out.Reset()
		if err := run(ctx, []string{"medserve", "restore", "--data-dir", other, "--in", file}, getenv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit chain verifies (10 events") {
			t.Fatalf("restore: %v\n%s", err, out.String())
		}
		if err := run(ctx, []string{"medserve", "restore", "--data-dir", other, "--in", file}, getenv, io.Discard, io.Discard); err == nil {
			t.Fatal("restore over an existing database without --force succeeded")
		}
		if out, err := verifyCmd(t, getenv, "--data-dir", other); err != nil {
			t.Fatalf("verify restored: %v\n%s", err, out)
		}
		base, _, stop := startServerWith(t, serveConfig{dataDir: other, cacheMB: 0}, getenv)
		code, _, hist := post(t, base+"/api/v1/patients/history", `{"patient_id": "P-1"}`)
		stop()
		if code != http.StatusOK || !strings.Contains(string(hist), "fever and cough 1") || !strings.Contains(string(hist), `"queries":3`) {
			t.Fatalf("history from the restored store: %d %s", code, hist)
		}
	})
	t.Run("postgresql", func(t *testing.T) {
		src, dst := pgtest.FreshDatabase(t), pgtest.FreshDatabase(t)
		getenv := testEnv(map[string]string{"MEDSERVE_PHI_KEY": testPHIKey})
		dataDir := t.TempDir()
		serveAndAnswer(t, serveConfig{dataDir: dataDir, databaseURL: src, cacheMB: 0}, getenv, 10)
		file := filepath.Join(t.TempDir(), "medserve.dump")
		if err := run(ctx, []string{"medserve", "backup", "--database-url", src, "--data-dir", dataDir, "--out", file}, getenv, io.Discard, io.Discard); err != nil {
			t.Fatalf("backup: %v", err)
		}
		var out bytes.Buffer
		if err := run(ctx, []string{"medserve", "restore", "--database-url", dst, "--data-dir", dataDir, "--in", file}, getenv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit chain verifies (10 events") {
			t.Fatalf("restore: %v\n%s", err, out.String())
		}
		if out, err := verifyCmd(t, getenv, "--data-dir", dataDir, "--database-url", dst); err != nil {
			t.Fatalf("verify restored (with the source's checkpoints): %v\n%s", err, out)
		}
	})
}

func fromMicrosTest(v int64) time.Time { return time.UnixMicro(v).UTC() }
