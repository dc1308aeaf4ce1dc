package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"medserve/internal/audit"
	"medserve/internal/pipeline"
	"medserve/internal/registry"
	"medserve/internal/triage"
)

const modelsUsage = `usage: medserve models list|history [--model triage]
       medserve models show VERSION        manifest, validation report (and optimisation report)
       medserve models promote VERSION --stage production|canary|shadow [--percent N] --reason WHY
       medserve models retire VERSION --reason WHY
       medserve models rollback --reason WHY
(common flags: --data-dir, --database-url, --models; running servers follow within 5 s)`

// cmdModels is the registry from the command line: the same gated
// promotion and rollback as the admin API, recorded in the store, which
// running servers follow.
func cmdModels(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		fmt.Fprintln(e.stderr, modelsUsage)
		return errUsage
	}
	verb := e.args[0]
	e.args = e.args[1:]
	version := ""
	if (verb == "promote" || verb == "retire" || verb == "show") && len(e.args) > 0 && e.args[0] != "" && e.args[0][0] != '-' {
		version, e.args = e.args[0], e.args[1:]
	}
	fset := flag.NewFlagSet("models "+verb, flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	models := modelsFlag(fset, e.getenv)
	name := fset.String("model", "triage", "model name")
	stage := fset.String("stage", "", "production, canary or shadow")
	percent := fset.Int("percent", 0, "canary share of traffic, 0–100")
	reason := fset.String("reason", "", "why (recorded with who in the version history)")
	clinicalData := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	db, _, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	_, feat, err := triageDeps(*clinicalData)
	if err != nil {
		return err
	}
	reg := registry.New(db, filepath.Join(*models, *name), *name, feat, func(a *triage.Artifact) (pipeline.Predictor, func(), error) {
		return pipeline.DirectPredictor{Model: a.Model}, func() {}, nil
	})
	switch verb {
	case "list":
		// Registering what is on disk is all a listing writes.
		recs, err := reg.Sync(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTAGE\tPERCENT\tVALIDATED\tREGISTERED")
		for _, m := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\n", m.Version, m.Stage, m.Percent, m.Validated, m.CreatedAt.Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "history":
		hist, err := db.Promotions(ctx, *name)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tVERSION\tFROM\tTO\tPERCENT\tBY\tREASON")
		for _, p := range hist {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Time.Format("2006-01-02 15:04:05"), p.Version, p.From, p.To, p.Percent, p.Actor, p.Reason)
		}
		return tw.Flush()
	case "show":
		if version == "" {
			fmt.Fprintln(e.stderr, modelsUsage)
			return errUsage
		}
		dir := filepath.Join(*models, *name, version)
		for _, f := range []string{"manifest.json", "report.md", "optimize.json"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if errors.Is(err, fs.ErrNotExist) && f == "optimize.json" {
				continue
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "==> %s\n%s\n", filepath.Join(dir, f), b)
		}
		return nil
	case "promote", "retire", "rollback":
	default:
		fmt.Fprintln(e.stderr, modelsUsage)
		return errUsage
	}
	if *reason == "" || (verb != "rollback" && version == "") || (verb == "promote" && *stage == "") {
		fmt.Fprintln(e.stderr, modelsUsage)
		return errUsage
	}
	if _, err := reg.Start(ctx); err != nil {
		return err
	}
	actor := "cli:" + e.getenv("USER")
	// Every change is an audit event with who and why, appended to the
	// same chain the servers write (the store serialises appenders).
	audited := func(action, resource, why string) error {
		_, err := audit.NewChain(db, nil).Append(ctx, audit.Event{Actor: actor, Role: "admin", Action: action, Resource: resource,
			Outcome: audit.OutcomeOK, Reason: why})
		return err
	}
	switch verb {
	case "rollback":
		from := ""
		if a := reg.Serving(); a != nil {
			from = a.Manifest.Version
		}
		to, err := reg.Rollback(ctx, actor, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: production is now version %s\n", *name, to)
		return audited("model.rollback", *name, "rollback from "+from+" to "+to+": "+*reason)
	case "retire":
		*stage = registry.StageRetired
	}
	err = reg.Promote(ctx, version, *stage, *percent, actor, *reason)
	var gerr *registry.GateError
	if errors.As(err, &gerr) {
		return fmt.Errorf("%s/%s refused: the validation report fails the gate on %v", *name, version, gerr.Failed)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s/%s is now %s%s\n", *name, version, *stage, percentNote(*stage, *percent))
	return audited("model.promote", *name+"/"+version, *stage+percentNote(*stage, *percent)+": "+*reason)
}

func percentNote(stage string, p int) string {
	if stage != registry.StageCanary {
		return ""
	}
	return " at " + strconv.Itoa(p) + " %"
}
