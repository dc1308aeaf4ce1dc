package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestModelsCommand: the registry from the command line — list, a gated
// promotion refused, one accepted, rollback, history with who and why.
func TestModelsCommand(t *testing.T) {
	models, dataDir := t.TempDir(), t.TempDir()
	copyModelVersion(t, models, "1", true)
	copyModelVersion(t, models, "2", false)
	copyModelVersion(t, models, "3", true)
	runM := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"medserve", "models"}, append(args, "--data-dir", dataDir, "--models", models)...),
			testEnv(map[string]string{"USER": "dr-ops"}), &out, io.Discard)
		return out.String(), err
	}
	if out, err := runM("list"); err != nil || strings.Count(out, "candidate") != 3 {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, err := runM("promote", "2", "--stage", "production", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("version 2 fails the gate: %v", err)
	}
	if out, err := runM("promote", "1", "--stage", "canary", "--percent", "25", "--reason", "a quarter"); err != nil || !strings.Contains(out, "canary at 25 %") {
		t.Fatalf("canary: %v %s", err, out)
	}
	if out, err := runM("promote", "1", "--stage", "production", "--reason", "all in"); err != nil || !strings.Contains(out, "now production") {
		t.Fatalf("production: %v %s", err, out)
	}
	if out, err := runM("rollback", "--reason", "drill"); err != nil || !strings.Contains(out, "version 3") {
		t.Fatalf("rollback: %v %s", err, out)
	}
	if out, err := runM("show", "1"); err != nil || !strings.Contains(out, "report.md") || !strings.Contains(out, "Triage validation report") {
		t.Fatalf("show: %v\n%.300s", err, out)
	}
	if out, err := verifyCmd(t, testEnv(nil), "--data-dir", dataDir); err != nil || !strings.Contains(out, " 3 events") {
		t.Fatalf("the three changes must be audit events in a chain that verifies: %v\n%s", err, out)
	}
	out, err := runM("history")
	if err != nil || !strings.Contains(out, "cli:dr-ops") || !strings.Contains(out, "rollback: drill") || !strings.Contains(out, "a quarter") {
		t.Fatalf("history: %v\n%s", err, out)
	}
}
