package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelpRunsNothing: "-h" prints a command's flags and stops; it never
// starts a server, migrates a store or creates a key.
func TestHelpRunsNothing(t *testing.T) {
	for _, args := range [][]string{
		{"serve"}, {"migrate"}, {"keys", "create"}, {"backup"}, {"audit", "verify"}, {"models", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			var stderr bytes.Buffer
			full := append(append([]string{"medserve"}, args...), "--data-dir", dir, "-h")
			if err := run(context.Background(), full, testEnv(nil), io.Discard, &stderr); err != nil {
				t.Fatalf("%v: %v", full, err)
			}
			if !strings.Contains(stderr.String(), "-data-dir") {
				t.Errorf("no flags printed: %q", stderr.String())
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("-h created %s: it ran the command", dir)
			}
		})
	}
}

// TestDeploymentArgsAreServeFlags: every flag the Kubernetes Deployment
// passes is one serve knows (a misspelt flag would crash-loop every pod).
func TestDeploymentArgsAreServeFlags(t *testing.T) {
	b, err := os.ReadFile("../../deploy/k8s/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"medserve", "serve", "-h"}, testEnv(nil), io.Discard, &help); err != nil {
		t.Fatal(err)
	}
	args := regexp.MustCompile(`(?m)^\s*- --([a-z0-9-]+)`).FindAllStringSubmatch(string(b), -1)
	if len(args) < 3 {
		t.Fatalf("found %d args in the Deployment", len(args))
	}
	for _, a := range args {
		if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(a[1]) + `\b`).MatchString(help.String()) {
			t.Errorf("the Deployment passes --%s, which serve does not know", a[1])
		}
	}
}
