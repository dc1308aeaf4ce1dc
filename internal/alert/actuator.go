package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"medserve/internal/store"
)

// Registry is the model registry as the engine uses it.
type Registry interface {
	Rollback(ctx context.Context, actor, reason string) (string, error)
	ProductionVersion() string
	ServingVersions() []string
	Promote(ctx context.Context, version, stage string, percent int, actor, reason string) error
}

// Actions carries out the engine's decisions on this replica: rollbacks
// through the registry, modes through the mode state, notifications and
// pages to a webhook.
type Actions struct {
	Registry Registry
	Modes    *ModeState
	Webhook  string       // URL; "" logs only
	Client   *http.Client // nil: 5 s timeout
	Logf     func(format string, args ...any)
}

var _ Actuator = (*Actions)(nil)

// Rollback implements Actuator.
func (a *Actions) Rollback(ctx context.Context, reason string) (string, string, error) {
	from := a.Registry.ProductionVersion()
	if _, err := a.Registry.Rollback(ctx, "alert-engine", reason); err != nil {
		return from, from, err
	}
	return from, a.Registry.ProductionVersion(), nil
}

// RetireCanary implements Actuator: only a version serving as canary now
// is retired (never production, which only a rollback replaces).
func (a *Actions) RetireCanary(ctx context.Context, version, reason string) error {
	serving := a.Registry.ServingVersions()
	if len(serving) < 2 || !slices.Contains(serving[1:], version) {
		return fmt.Errorf("%s is not serving as a canary", version)
	}
	_, v, ok := strings.Cut(version, "/")
	if !ok {
		return fmt.Errorf("version %q: want name/version", version)
	}
	return a.Registry.Promote(ctx, v, "retired", 0, "alert-engine", reason)
}

// Production implements Actuator.
func (a *Actions) Production() string { return a.Registry.ProductionVersion() }

// ApplyModes implements Actuator.
func (a *Actions) ApplyModes(modes []store.Mode) { a.Modes.Apply(modes) }

// Send implements Actuator: a JSON POST, retried three times with backoff;
// a page that cannot be delivered is an error the incident report shows.
func (a *Actions) Send(ctx context.Context, n Notification) error {
	if a.Logf != nil {
		a.Logf("alert notification: page=%v status=%s rule=%s severity=%s: %s", n.Page, n.Status, n.Rule, n.Severity, n.Summary)
	}
	if a.Webhook == "" {
		return nil
	}
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Webhook, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("alert webhook: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("status %s", resp.Status)
	}
	return fmt.Errorf("alert webhook: %w", last)
}
