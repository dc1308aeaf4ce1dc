package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"medserve/internal/audit"
)

// errChainBroken makes `medserve audit verify` exit non-zero.
var errChainBroken = errors.New("audit chain verification failed")

func cmdAudit(ctx context.Context, e env) error {
	if len(e.args) > 0 && e.args[0] == "public-key" {
		return cmdAuditPublicKey(e)
	}
	if len(e.args) == 0 || e.args[0] != "verify" {
		fmt.Fprintln(e.stderr, "usage: medserve audit verify [--data-dir DIR] [--database-url URL] [--checkpoints FILE,...] [--public-keys id:base64,...] [--json]\n       medserve audit public-key [--data-dir DIR]   the checkpoint key's id:base64 public half, for auditors and for --public-keys after a rotation")
		return errUsage
	}
	e.args = e.args[1:]
	fset := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	extra := fset.String("checkpoints", "", "further checkpoint files, comma-separated (other replicas' copies, the webhook receiver's)")
	pubs := fset.String("public-keys", e.getenv("MEDSERVE_AUDIT_PUBLIC_KEYS"), "verification keys of earlier signing keys, id:base64,... (env MEDSERVE_AUDIT_PUBLIC_KEYS)")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	keys, err := audit.ParsePublicKeys(*pubs)
	if err != nil {
		return err
	}
	// The current signing key's public half; loading it from the data
	// directory does not create one (verification must not write).
	if s, ok, err := audit.SignerFromEnv(e.getenv); err != nil {
		return err
	} else if ok {
		id, pub := s.PublicKey()
		keys[id] = pub
	} else if s, err := audit.ReadSigner(filepath.Join(*dataDir, auditKeyFile)); err == nil {
		id, pub := s.PublicKey()
		keys[id] = pub
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	var cps []audit.Checkpoint
	files := []string{filepath.Join(*dataDir, checkpointsFile)}
	for _, f := range strings.Split(*extra, ",") {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	for i, f := range files {
		got, err := audit.ReadCheckpoints(f)
		if i == 0 && errors.Is(err, fs.ErrNotExist) {
			continue // no checkpoint written yet
		}
		if err != nil {
			return err
		}
		cps = append(cps, got...)
	}
	if len(cps) > 0 && len(keys) == 0 {
		return errors.New("checkpoints found but no verification key: give --public-keys or MEDSERVE_AUDIT_KEY")
	}

	db, where, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := audit.Verify(ctx, db, cps, keys)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printAuditReport(e, where, rep, keys)
	}
	if !rep.OK {
		return errChainBroken
	}
	return nil
}

func printAuditReport(e env, where string, rep audit.Report, keys map[string]ed25519.PublicKey) {
	fmt.Fprintf(e.stdout, "audit chain in %s: %d events, head %s, %d signed checkpoints checked (%d keys)\n",
		where, rep.Events, rep.Head, rep.CheckpointsChecked, len(keys))
	if rep.OK {
		fmt.Fprintln(e.stdout, "OK: every event verifies and every checkpoint matches")
		return
	}
	first := rep.Problems[0]
	fmt.Fprintf(e.stdout, "FAILED: first problem at event %d (%s): %s\n", first.Seq, first.Kind, first.Detail)
	for _, p := range rep.Problems[1:] {
		fmt.Fprintf(e.stdout, "  event %d (%s): %s\n", p.Seq, p.Kind, p.Detail)
	}
}

// cmdAuditPublicKey prints the current checkpoint signing key's public half
// as id:base64, the form --public-keys takes.
func cmdAuditPublicKey(e env) error {
	e.args = e.args[1:]
	fset := flag.NewFlagSet("audit public-key", flag.ContinueOnError)
	dataDir := fset.String("data-dir", envOr(e.getenv, "MEDSERVE_DATA_DIR", "./medserve-data"), "state directory, as given to serve (env MEDSERVE_DATA_DIR)")
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	s, ok, err := audit.SignerFromEnv(e.getenv)
	if err != nil {
		return err
	}
	if !ok {
		if s, err = audit.ReadSigner(filepath.Join(*dataDir, auditKeyFile)); err != nil {
			return err
		}
	}
	id, pub := s.PublicKey()
	fmt.Fprintf(e.stdout, "%s:%s\n", id, base64.StdEncoding.EncodeToString(pub))
	return nil
}
