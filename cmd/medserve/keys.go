package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"medserve/internal/auth"
	"medserve/internal/ratelimit"
	"medserve/internal/store"
)

const keysUsage = `usage: medserve keys create --role ROLE [--name NAME] [--limits "inference=600/min burst 100"]
       medserve keys list
       medserve keys revoke ID
Each also takes --data-dir DIR or --database-url URL (as given to serve).
Roles: clinician, service, auditor, admin. The token is printed once, at creation;
the store keeps only its hash. A revoked key stops working within 10 s on every replica.
`

// cmdKeys manages API keys in the store: create (the token is printed
// once), list (never hashes or secrets) and revoke.
func cmdKeys(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		fmt.Fprint(e.stderr, keysUsage)
		return errUsage
	}
	sub := e.args[0]
	e.args = e.args[1:]
	switch sub {
	case "create":
		return cmdKeysCreate(ctx, e)
	case "list":
		return cmdKeysList(ctx, e)
	case "revoke":
		return cmdKeysRevoke(ctx, e)
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, keysUsage)
		return nil
	}
	fmt.Fprintf(e.stderr, "keys: unknown subcommand %q\n%s", sub, keysUsage)
	return errUsage
}

// helpAsked reports whether args ask for -h before any "--"; parseFlags
// then has printed the flags, and the command must stop there.
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

func cmdKeysCreate(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("keys create", flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	role := fset.String("role", "", "the key's role: "+strings.Join(auth.Roles(), ", ")+" (required)")
	name := fset.String("name", "", "a label for people, e.g. \"integration engine, ward 3\"")
	limits := fset.String("limits", "", "rate-limit overrides, e.g. \"inference=600/min burst 100\"; empty = the zones' defaults")
	if err := parseFlags(fset, e); err != nil || helpAsked(e.args) {
		return err
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(e.stderr, "keys create: unexpected argument %q\n%s", fset.Arg(0), keysUsage)
		return errUsage
	}
	if *role == "" {
		fmt.Fprintf(e.stderr, "keys create: --role is required (%s)\n", strings.Join(auth.Roles(), ", "))
		return errUsage
	}
	if !auth.ValidRole(*role) {
		fmt.Fprintf(e.stderr, "keys create: unknown role %q (want %s)\n", *role, strings.Join(auth.Roles(), ", "))
		return errUsage
	}
	db, where, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	// A key whose limits do not parse would get the zones' defaults at
	// every request: refuse it here, where the mistake can be mended.
	if _, err := ratelimit.DefaultZones().For(ratelimit.ZoneInference, *limits); err != nil {
		return fmt.Errorf("--limits: %w", err)
	}
	k, token, err := auth.CreateKey(ctx, db, *role, *name, *limits, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "id:    %s\nrole:  %s\ntoken: %s\n", k.ID, k.Role, token)
	fmt.Fprintf(e.stderr, "created API key %s in %s; the token above is shown only this once (the store keeps its hash): keep it in a secret store\n", k.ID, where)
	return nil
}

func cmdKeysList(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("keys list", flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	if err := parseFlags(fset, e); err != nil || helpAsked(e.args) {
		return err
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(e.stderr, "keys list: unexpected argument %q\n%s", fset.Arg(0), keysUsage)
		return errUsage
	}
	db, _, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	ks, err := db.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	printKeys(e, ks)
	return nil
}

// printKeys writes one line per key: never the hash, which is all the
// store has of the secret.
func printKeys(e env, ks []store.APIKey) {
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tNAME\tLIMITS\tCREATED\tREVOKED")
	for _, k := range ks {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, orDash(k.Name), orDash(k.Limits),
			k.CreatedAt.UTC().Format(time.RFC3339), revoked)
	}
	tw.Flush()
}

func cmdKeysRevoke(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("keys revoke", flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	if err := parseFlags(fset, e); err != nil || helpAsked(e.args) {
		return err
	}
	// Flags may also follow the id.
	id, extra := fset.Arg(0), fset.NArg() > 1
	if extra {
		if err := fset.Parse(fset.Args()[1:]); err != nil {
			return errUsage
		}
		extra = fset.NArg() > 0
	}
	if id == "" || extra {
		fmt.Fprint(e.stderr, "keys revoke: exactly one key id is required\n"+keysUsage)
		return errUsage
	}
	db, _, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	k, err := db.APIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("keys revoke: no API key %q", id)
	}
	if err != nil {
		return err
	}
	if k.RevokedAt != nil {
		fmt.Fprintf(e.stdout, "%s was already revoked at %s\n", id, k.RevokedAt.UTC().Format(time.RFC3339))
		return nil
	}
	now := time.Now()
	if err := db.RevokeAPIKey(ctx, id, now); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %s (%s, %s) at %s; servers stop accepting it within 10 s\n",
		id, k.Role, orNoName(k.Name), now.UTC().Format(time.RFC3339))
	return nil
}

func orNoName(s string) string {
	if s == "" {
		return "no name"
	}
	return fmt.Sprintf("%q", s)
}
