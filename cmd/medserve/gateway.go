package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"medserve/internal/auth"
	"medserve/internal/gateway"
	"medserve/internal/ratelimit"
	"medserve/internal/server"
)

// bootstrapKeyFile holds the first admin key's token in embedded mode.
const bootstrapKeyFile = "bootstrap-admin.key"

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// buildGateway turns the flags into the server's security configuration:
// authentication (API keys in the store, JWTs against a JWKS file), rate
// limits (in Redis when configured, so replicas share one budget), CORS,
// headers and network rules.
func buildGateway(ctx context.Context, e env, c serveConfig, st *state) (server.Gateway, error) {
	g := c.gw
	var gw server.Gateway
	var err error
	if g.insecureNoAuth {
		if !isLoopback(c.addr) {
			return gw, fmt.Errorf("--insecure-no-auth serves without authentication and is refused on %s: use a loopback address such as 127.0.0.1:8080", c.addr)
		}
		fmt.Fprintln(e.stderr, "medserve: WARNING: authentication is off (--insecure-no-auth); every caller may do everything")
	} else {
		var jwt *auth.JWTConfig
		if g.jwksFile != "" {
			jwks, err := auth.LoadJWKS(g.jwksFile)
			if err != nil {
				return gw, err
			}
			jwt = &auth.JWTConfig{JWKS: jwks, Issuer: g.jwtIssuer, Audience: g.jwtAudience, RoleClaim: g.jwtRole}
			if err := jwt.Check(); err != nil {
				return gw, err
			}
		}
		gw.Auth = auth.NewAuthenticator(st.store, jwt, nil)
		if err := bootstrapAdmin(ctx, e, c, st); err != nil {
			return gw, err
		}
	}

	if gw.Zones, err = ratelimit.ParseZones(g.rateLimits); err != nil {
		return gw, fmt.Errorf("--rate-limits: %w", err)
	}
	local := ratelimit.NewMemory(nil, 1<<20)
	gw.Limiter = local
	if st.redis != nil {
		gw.Limiter = ratelimit.NewRedis(st.redis, "medserve:rl:", local)
	}
	if gw.TrustedProxies, err = gateway.ParsePrefixes(g.trustedProxies); err != nil {
		return gw, fmt.Errorf("--trusted-proxies: %w", err)
	}
	if g.metricsNets != "" {
		if gw.MetricsNets, err = gateway.ParsePrefixes(g.metricsNets); err != nil {
			return gw, fmt.Errorf("--metrics-networks: %w", err)
		}
	}
	gw.MetricsToken = g.metricsToken
	for _, o := range strings.Split(g.corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			gw.CORSOrigins = append(gw.CORSOrigins, o)
		}
	}
	if _, err := gateway.CORS(gw.CORSOrigins); err != nil {
		return gw, fmt.Errorf("--cors-origins: %w", err)
	}
	if (g.tlsCert == "") != (g.tlsKey == "") {
		return gw, errors.New("--tls-cert and --tls-key go together")
	}
	gw.HSTS = g.tlsCert != "" || g.behindTLSProxy
	gw.MaxInFlight = g.maxInFlight
	return gw, nil
}

// bootstrapAdmin gives a new embedded installation its first admin key,
// written to a 0600 file whose path (never the key) is printed. With a
// shared database the first key is made with `medserve keys create`
// (SPEC section 12: only the embedded mode generates secrets).
func bootstrapAdmin(ctx context.Context, e env, c serveConfig, st *state) error {
	if c.databaseURL != "" {
		keys, err := st.store.ListAPIKeys(ctx)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			fmt.Fprintln(e.stderr, "medserve: no API key exists yet: create one with `medserve keys create --role admin --database-url …`")
		}
		return nil
	}
	path := filepath.Join(c.dataDir, bootstrapKeyFile)
	created, err := auth.EnsureBootstrapAdmin(ctx, st.store, path)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(e.stderr, "medserve: created the first admin API key; its token is in %s (mode 0600): use it to create named keys, then revoke it\n", path)
	}
	return nil
}
