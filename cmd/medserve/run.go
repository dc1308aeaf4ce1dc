package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"medserve"
	"medserve/internal/text"
)

// version is the build's version, set with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks a command-line mistake; the usage text has been printed.
var errUsage = errors.New("usage error")

// errHelp ends a command whose flags were asked for (-h); run reports success.
var errHelp = errors.New("help shown")

// env is what every subcommand gets: its arguments and the process's
// environment and streams, passed in so that tests can run the whole program.
type env struct {
	args   []string
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

const usage = `medserve — a clinical AI inference server

Usage:
  medserve serve                      run the HTTP server (see -h for flags)
  medserve analyze [flags] TEXT       findings, vitals and domain of a clinical text
  medserve analyze --jsonl            the same for {"text","targets"} lines on stdin
  medserve interactions [--json] DRUG DRUG...   drug–drug interactions of a medication list
  medserve differential [--json] TEXT  ranked DDXPlus conditions for a clinical text
  medserve triage [flags] TEXT         triage acuity for a complaint (see -h); --jsonl for API request lines
  medserve train triage               cross-validate the model families, write models/triage/<version>/
  medserve models list|history|promote|retire|rollback   the model registry (gated, recorded; servers follow)
  medserve optimize --model triage [--version N] --methods int8,prune,distill [--json]   judged int8/pruned/distilled candidates
  medserve eval triage [--data PATH]  cross-validated triage report, nurse side by side
  medserve eval triage --model DIR --test PATH   score a saved model on rows it never saw
  medserve eval negation --file PATH  score ConText on a NegEx-format annotated set
  medserve eval interactions          the interaction checker on CRESCENDDI and the high-priority list
  medserve eval differential          plumbing check of the differential on authored sets (not clinical)
  medserve bench [--url URL] [--rate N] [--duration D] [--baseline]   load-test the inference API
  medserve migrate [--database-url URL]   apply the store's migrations (SQLite in --data-dir by default)
  medserve audit verify [--database-url URL]   check the audit hash chain and signed checkpoints; non-zero exit on failure
  medserve audit public-key           the checkpoint key's public half (id:base64) for auditors
  medserve backup --out PATH          write a consistent copy of the store (SQLite file or pg_dump archive)
  medserve restore --in PATH [--force]   load a backup into the store (server stopped), then verify its audit chain
  medserve keys create|list|revoke    API keys: create --role R [--name N] [--limits L] prints the token once
  medserve lexicon                    lexicon and rule-set sizes, by type and source
  medserve kb                         knowledge-base sizes, by type, relation and source

Run "medserve COMMAND -h" for a command's flags.
`

// run is the whole program: main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWithInput(ctx, args, getenv, os.Stdin, stdout, stderr)
}

func runWithInput(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	e := env{args: args[2:], getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if err := dispatch(ctx, args[1], e); !errors.Is(err, errHelp) {
		return err
	}
	return nil // the command's flags were printed; nothing was run
}

func dispatch(ctx context.Context, cmd string, e env) error {
	switch cmd {
	case "serve":
		return cmdServe(ctx, e)
	case "analyze":
		return cmdAnalyze(ctx, e)
	case "eval":
		return cmdEval(ctx, e)
	case "lexicon":
		return cmdLexicon(ctx, e)
	case "kb":
		return cmdKB(ctx, e)
	case "interactions":
		return cmdInteractions(ctx, e)
	case "differential":
		return cmdDifferential(ctx, e)
	case "triage":
		return cmdTriage(ctx, e)
	case "train":
		return cmdTrain(ctx, e)
	case "models":
		return cmdModels(ctx, e)
	case "optimize":
		return cmdOptimize(ctx, e)
	case "bench":
		return cmdBench(ctx, e)
	case "migrate":
		return cmdMigrate(ctx, e)
	case "audit":
		return cmdAudit(ctx, e)
	case "backup":
		return cmdBackup(ctx, e)
	case "restore":
		return cmdRestore(ctx, e)
	case "keys":
		return cmdKeys(ctx, e)
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, usage)
		return nil
	}
	fmt.Fprintf(e.stderr, "unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// clinicalDataFlag registers the flag that points at an unpacked data tree;
// by default the data embedded in the binary is used.
func clinicalDataFlag(fset *flag.FlagSet, getenv func(string) string) *string {
	return fset.String("clinical-data", getenv("MEDSERVE_CLINICAL_DATA"), "directory holding the clinical data tree (default: the data embedded in the binary; env MEDSERVE_CLINICAL_DATA)")
}

// dataFS opens the clinical data tree.
func dataFS(dir string) (fs.FS, error) {
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("clinical data: %w", err)
		}
		return os.DirFS(dir), nil
	}
	sub, err := fs.Sub(medserve.Data, "data")
	if err != nil {
		return nil, fmt.Errorf("embedded clinical data: %w", err)
	}
	return sub, nil
}

func loadEngine(dir string) (*text.Engine, error) {
	fsys, err := dataFS(dir)
	if err != nil {
		return nil, err
	}
	eng, err := text.Load(fsys)
	if err != nil {
		return nil, fmt.Errorf("load text engine: %w", err)
	}
	return eng, nil
}

// parseFlags parses a subcommand's flags, printing usage errors to stderr.
func parseFlags(fset *flag.FlagSet, e env) error {
	fset.SetOutput(e.stderr)
	if err := fset.Parse(e.args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp // -h: stop after the flags were printed
		}
		return errUsage
	}
	return nil
}
