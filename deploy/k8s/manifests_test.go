// Package k8s holds medserve's Kubernetes manifests. Its test decodes every
// document strictly into its k8s.io/api type (an unknown or misspelt field
// fails, as it would on the API server) and checks that the manifests agree
// with each other, with the Dockerfile and with SPEC sections 8, 11 and 12.
package k8s

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Figures the manifests must agree with. The deploy module cannot import
// medserve's internal packages, so they are restated here with their source.
const (
	appName      = "medserve"
	serverPort   = 8080           // cmd/medserve/serve.go --addr default
	servicePort  = 80             // the Service's port
	minReplicas  = 3              // SPEC section 12 and the task's figure
	runtimeUID   = 65532          // deploy/Dockerfile USER
	memoryAlert  = 8192 << 20     // deploy/prometheus/rules.yml MemoryHigh: 8192 MB resident
	secretMarker = "PLACEHOLDER"  // every value in secret.yaml carries it
	livePath     = "/health/live" // internal/server/routes.go
	readyPath    = "/health/ready"
)

// zone is, for one Ingress path, the seed's nginx rate-limit zone, the
// server's route timeout and its body limit (SPEC section 8,
// internal/server/routes.go, README "Limits").
type zone struct {
	rpm           int
	serverTimeout time.Duration
	body          string // proxy-body-size
}

// ingressPaths lists every path the Ingresses may route, and its zone. A
// path not listed is a problem: /metrics and /health must stay internal.
var ingressPaths = map[string]zone{
	"/api/v1/inference": {rpm: 60, serverTimeout: 5 * time.Second, body: "1m"},
	"/api/v1/clinical":  {rpm: 30, serverTimeout: 10 * time.Second, body: "1m"},
	"/api/v1/batch":     {rpm: 10, serverTimeout: 10 * time.Second, body: "50m"},
	"/api":              {rpm: 60, serverTimeout: 10 * time.Second, body: "1m"},
	"/v2":               {rpm: 60, serverTimeout: 5 * time.Second, body: "50m"},
	"/openapi.json":     {rpm: 60, serverTimeout: 5 * time.Second, body: "1m"},
}

// requiredSecretEnv are the variables a multi-replica deployment must take
// from the Secret (cmd/medserve/state.go, internal/phi, internal/audit).
var requiredSecretEnv = []string{
	"MEDSERVE_PHI_KEY", "MEDSERVE_DATABASE_URL", "MEDSERVE_REDIS_URL", "MEDSERVE_AUDIT_KEY",
}

// kinds maps apiVersion/kind to a new object of its API type. A document of
// any other kind fails the test: add it here, with checks, on purpose.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"v1/Secret":                              func() any { return new(corev1.Secret) },
	"v1/PersistentVolumeClaim":               func() any { return new(corev1.PersistentVolumeClaim) },
	"networking.k8s.io/v1/Ingress":           func() any { return new(networkingv1.Ingress) },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return new(networkingv1.NetworkPolicy) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
}

// errUnknownKind is returned for a document whose apiVersion/kind is not in kinds.
var errUnknownKind = errors.New("unknown apiVersion/kind")

var (
	docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)
)

// splitDocuments splits a YAML stream at its "---" lines and drops the
// documents that hold only comments and blank lines.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(b), -1) {
		for _, line := range strings.Split(d, "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				docs = append(docs, []byte(d))
				break
			}
		}
	}
	return docs
}

// decodeDocument decodes one YAML document into the API type its apiVersion
// and kind name, refusing duplicate keys, unknown fields and fields whose
// case differs from the API's (encoding/json alone matches names
// case-insensitively; the API server does not).
func decodeDocument(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, fmt.Errorf("type meta: %w", err)
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("%w %q/%q", errUnknownKind, tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the object", tm.Kind)
	}
	back, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var orig, round any
	if err := json.Unmarshal(j, &orig); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(back, &round); err != nil {
		return nil, err
	}
	if err := exactKeys(tm.Kind, orig, round); err != nil {
		return nil, err
	}
	return obj, nil
}

// exactKeys reports a key of orig that the typed round trip did not write
// back under the same name, unless its value is empty (omitempty drops it).
func exactKeys(path string, orig, round any) error {
	switch o := orig.(type) {
	case map[string]any:
		r, _ := round.(map[string]any)
		for k, v := range o {
			w, ok := r[k]
			if !ok {
				if isEmpty(v) {
					continue
				}
				return fmt.Errorf("%s.%s: not a field of the API type (names are case-sensitive)", path, k)
			}
			if err := exactKeys(path+"."+k, v, w); err != nil {
				return err
			}
		}
	case []any:
		r, _ := round.([]any)
		if len(r) != len(o) {
			return nil
		}
		for i := range o {
			if err := exactKeys(fmt.Sprintf("%s[%d]", path, i), o[i], r[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// manifests is every object of deploy/k8s, by type.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	secrets     []*corev1.Secret
	pvcs        []*corev1.PersistentVolumeClaim
	ingresses   []*networkingv1.Ingress
	netpols     []*networkingv1.NetworkPolicy
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
}

func (m *manifests) add(obj any) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		m.deployments = append(m.deployments, o)
	case *corev1.Service:
		m.services = append(m.services, o)
	case *corev1.Secret:
		m.secrets = append(m.secrets, o)
	case *corev1.PersistentVolumeClaim:
		m.pvcs = append(m.pvcs, o)
	case *networkingv1.Ingress:
		m.ingresses = append(m.ingresses, o)
	case *networkingv1.NetworkPolicy:
		m.netpols = append(m.netpols, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		m.hpas = append(m.hpas, o)
	case *policyv1.PodDisruptionBudget:
		m.pdbs = append(m.pdbs, o)
	default:
		panic(fmt.Sprintf("no slot for %T", obj))
	}
}

// metas lists every object's metadata with a "Kind/name" label.
func (m *manifests) metas() map[string]*metav1.ObjectMeta {
	out := map[string]*metav1.ObjectMeta{}
	for _, o := range m.deployments {
		out["Deployment/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.services {
		out["Service/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.secrets {
		out["Secret/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.pvcs {
		out["PersistentVolumeClaim/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.ingresses {
		out["Ingress/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.netpols {
		out["NetworkPolicy/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.hpas {
		out["HorizontalPodAutoscaler/"+o.Name] = &o.ObjectMeta
	}
	for _, o := range m.pdbs {
		out["PodDisruptionBudget/"+o.Name] = &o.ObjectMeta
	}
	return out
}

// clone deep-copies every object, so a test can break one copy.
func (m *manifests) clone() *manifests {
	c := &manifests{}
	for _, o := range m.deployments {
		c.deployments = append(c.deployments, o.DeepCopy())
	}
	for _, o := range m.services {
		c.services = append(c.services, o.DeepCopy())
	}
	for _, o := range m.secrets {
		c.secrets = append(c.secrets, o.DeepCopy())
	}
	for _, o := range m.pvcs {
		c.pvcs = append(c.pvcs, o.DeepCopy())
	}
	for _, o := range m.ingresses {
		c.ingresses = append(c.ingresses, o.DeepCopy())
	}
	for _, o := range m.netpols {
		c.netpols = append(c.netpols, o.DeepCopy())
	}
	for _, o := range m.hpas {
		c.hpas = append(c.hpas, o.DeepCopy())
	}
	for _, o := range m.pdbs {
		c.pdbs = append(c.pdbs, o.DeepCopy())
	}
	return c
}

// loadManifests decodes every document of every *.yaml file here.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.yaml files in deploy/k8s")
	}
	m := &manifests{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocuments(b)
		if len(docs) == 0 {
			t.Errorf("%s: no document", f)
		}
		for i, d := range docs {
			obj, err := decodeDocument(d)
			if err != nil {
				t.Errorf("%s, document %d: %v", f, i+1, err)
				continue
			}
			m.add(obj)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// The checks. Each returns the problems it finds; TestChecksCatchMistakes
// proves that each one can fail.

// deployment returns the one medserve Deployment, or nil.
func (m *manifests) deployment() *appsv1.Deployment {
	for _, d := range m.deployments {
		if d.Name == appName {
			return d
		}
	}
	return nil
}

// mainContainer is the medserve container of the Deployment.
func mainContainer(d *appsv1.Deployment) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == appName {
			return c
		}
	}
	return nil
}

// flagValue returns the value of --name=value in args; a bare --name (a
// boolean flag) gives "" and true. As in package flag, the last one wins.
func flagValue(args []string, name string) (value string, ok bool) {
	for _, a := range args {
		if a == "--"+name {
			value, ok = "", true
		} else if v, found := strings.CutPrefix(a, "--"+name+"="); found {
			value, ok = v, true
		}
	}
	return value, ok
}

// labelsMatch reports whether a non-empty selector selects labels.
func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// resolvePort returns the container port a probe, Service or Ingress port
// names (by number or by name).
func resolvePort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		for _, cp := range c.Ports {
			if cp.ContainerPort == p.IntVal {
				return cp.ContainerPort, true
			}
		}
		return 0, false
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func checkDeploymentShape(m *manifests) []string {
	if len(m.deployments) != 1 {
		return []string{fmt.Sprintf("want exactly one Deployment, have %d", len(m.deployments))}
	}
	d := m.deployment()
	if d == nil {
		return []string{"no Deployment named " + appName}
	}
	var p []string
	if d.Spec.Replicas == nil || *d.Spec.Replicas != minReplicas {
		p = append(p, fmt.Sprintf("replicas: want %d", minReplicas))
	}
	if d.Spec.Selector == nil || d.Spec.Selector.MatchLabels["app"] != appName {
		p = append(p, "selector must match app: "+appName)
	} else if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		p = append(p, "selector does not select the pod template's labels")
	}
	if mainContainer(d) == nil {
		p = append(p, "no container named "+appName)
	}
	if d.Spec.Template.Spec.TopologySpreadConstraints == nil && d.Spec.Template.Spec.Affinity == nil {
		p = append(p, "replicas are not spread: set topologySpreadConstraints or podAntiAffinity")
	}
	if s := d.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		p = append(p, "rolling update should keep every replica (maxUnavailable: 0)")
	}
	return p
}

func checkProbes(m *manifests) []string {
	d := m.deployment()
	c := mainContainer(d)
	var p []string
	probe := func(name string, pr *corev1.Probe, paths ...string) {
		if pr == nil {
			p = append(p, name+": not set")
			return
		}
		if pr.HTTPGet == nil {
			p = append(p, name+": want an httpGet probe")
			return
		}
		if !slices.Contains(paths, pr.HTTPGet.Path) {
			p = append(p, fmt.Sprintf("%s: path %q, want one of %v", name, pr.HTTPGet.Path, paths))
		}
		if port, ok := resolvePort(c, pr.HTTPGet.Port); !ok || port != serverPort {
			p = append(p, fmt.Sprintf("%s: port %s does not resolve to %d", name, pr.HTTPGet.Port.String(), serverPort))
		}
	}
	probe("livenessProbe", c.LivenessProbe, livePath)
	probe("readinessProbe", c.ReadinessProbe, readyPath)
	probe("startupProbe", c.StartupProbe, livePath, readyPath)
	return p
}

func checkResources(m *manifests) []string {
	var p []string
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okReq := c.Resources.Requests[r]
				lim, okLim := c.Resources.Limits[r]
				switch {
				case !okReq:
					p = append(p, fmt.Sprintf("container %s: no %s request", c.Name, r))
				case !okLim:
					p = append(p, fmt.Sprintf("container %s: no %s limit", c.Name, r))
				case req.Cmp(lim) > 0:
					p = append(p, fmt.Sprintf("container %s: %s request %s above limit %s", c.Name, r, req.String(), lim.String()))
				}
			}
		}
	}
	return p
}

func checkSecurity(m *manifests) []string {
	var p []string
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		pod := spec.SecurityContext
		if pod == nil {
			pod = &corev1.PodSecurityContext{}
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			p = append(p, "automountServiceAccountToken should be false: medserve does not call the API server")
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			nonRoot := pod.RunAsNonRoot
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				p = append(p, fmt.Sprintf("container %s: runAsNonRoot is not true", c.Name))
			}
			uid := pod.RunAsUser
			if sc.RunAsUser != nil {
				uid = sc.RunAsUser
			}
			if uid == nil || *uid == 0 {
				p = append(p, fmt.Sprintf("container %s: runAsUser must be a non-zero uid", c.Name))
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				p = append(p, fmt.Sprintf("container %s: allowPrivilegeEscalation must be false", c.Name))
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				p = append(p, fmt.Sprintf("container %s: readOnlyRootFilesystem must be true", c.Name))
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				p = append(p, fmt.Sprintf("container %s: capabilities must drop ALL", c.Name))
			}
		}
	}
	return p
}

// imageTag returns the tag of an image reference ("" when none) and
// whether it is pinned by digest.
func imageTag(image string) (tag string, digest bool) {
	if i := strings.Index(image, "@"); i >= 0 {
		image, digest = image[:i], true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		tag = last[i+1:]
	}
	return tag, digest
}

func checkImages(m *manifests) []string {
	var p []string
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			tag, digest := imageTag(c.Image)
			switch {
			case tag == "latest":
				p = append(p, fmt.Sprintf("container %s: image %s uses :latest", c.Name, c.Image))
			case tag == "" && !digest:
				p = append(p, fmt.Sprintf("container %s: image %s has neither tag nor digest (that is :latest)", c.Name, c.Image))
			}
		}
	}
	return p
}

// mountedVolume returns the volume mounted at path in c, and the mount.
func mountedVolume(d *appsv1.Deployment, c *corev1.Container, path string) (*corev1.Volume, *corev1.VolumeMount) {
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		if filepath.Clean(vm.MountPath) != filepath.Clean(path) {
			continue
		}
		for j := range d.Spec.Template.Spec.Volumes {
			if v := &d.Spec.Template.Spec.Volumes[j]; v.Name == vm.Name {
				return v, vm
			}
		}
		return nil, vm
	}
	return nil, nil
}

func checkVolumes(m *manifests) []string {
	d := m.deployment()
	c := mainContainer(d)
	var p []string
	for _, vm := range c.VolumeMounts {
		if v, _ := mountedVolume(d, c, vm.MountPath); v == nil {
			p = append(p, fmt.Sprintf("volumeMount %s: no volume of that name", vm.Name))
		}
	}
	dataDir, ok := flagValue(c.Args, "data-dir")
	if !ok {
		p = append(p, "--data-dir is not set")
	} else if v, _ := mountedVolume(d, c, dataDir); v == nil || v.EmptyDir == nil {
		p = append(p, fmt.Sprintf("--data-dir %s must be an emptyDir mount (the root filesystem is read-only)", dataDir))
	}
	models, ok := flagValue(c.Args, "models")
	if !ok {
		p = append(p, "--models is not set")
		return p
	}
	v, vm := mountedVolume(d, c, models)
	if v == nil || v.PersistentVolumeClaim == nil {
		p = append(p, fmt.Sprintf("--models %s must be a PersistentVolumeClaim mount (the model directory all replicas share)", models))
		return p
	}
	if !vm.ReadOnly || !v.PersistentVolumeClaim.ReadOnly {
		p = append(p, "the model volume must be mounted read-only")
	}
	var claim *corev1.PersistentVolumeClaim
	for _, pvc := range m.pvcs {
		if pvc.Name == v.PersistentVolumeClaim.ClaimName {
			claim = pvc
		}
	}
	if claim == nil {
		p = append(p, fmt.Sprintf("claim %s is not among the manifests", v.PersistentVolumeClaim.ClaimName))
	} else if !slices.Contains(claim.Spec.AccessModes, corev1.ReadOnlyMany) {
		p = append(p, fmt.Sprintf("claim %s: want accessMode ReadOnlyMany (shared by every replica)", claim.Name))
	}
	return p
}

func checkArgs(m *manifests) []string {
	c := mainContainer(m.deployment())
	var p []string
	for _, a := range c.Args {
		if !strings.HasPrefix(a, "--") {
			p = append(p, fmt.Sprintf("arg %q: write flags as --name=value", a))
		}
	}
	addr, ok := flagValue(c.Args, "addr")
	if !ok {
		p = append(p, "--addr is not set")
	} else if _, port, _ := strings.Cut(addr, ":"); port != strconv.Itoa(serverPort) {
		p = append(p, fmt.Sprintf("--addr %s: want port %d", addr, serverPort))
	}
	if port, ok := resolvePort(c, intstr.FromString("http")); !ok || port != serverPort {
		p = append(p, fmt.Sprintf("container port http must be %d", serverPort))
	}
	if _, ok := flagValue(c.Args, "behind-tls-proxy"); !ok {
		p = append(p, "--behind-tls-proxy is not set: TLS ends at the ingress, HSTS must still be sent")
	}
	if v, ok := flagValue(c.Args, "trusted-proxies"); !ok || v == "" {
		p = append(p, "--trusted-proxies is not set: client IPs behind the ingress would all be the controller's")
	} else {
		for _, s := range strings.Split(v, ",") {
			if _, err := netip.ParsePrefix(strings.TrimSpace(s)); err != nil {
				p = append(p, fmt.Sprintf("--trusted-proxies: %v", err))
			}
		}
	}
	if _, ok := flagValue(c.Args, "insecure-no-auth"); ok {
		p = append(p, "--insecure-no-auth must never be deployed")
	}
	return p
}

func checkShutdown(m *manifests) []string {
	d := m.deployment()
	c := mainContainer(d)
	grace := 30 * time.Second // cmd/medserve/serve.go default
	if v, ok := flagValue(c.Args, "shutdown-grace"); ok {
		g, err := time.ParseDuration(v)
		if err != nil {
			return []string{fmt.Sprintf("--shutdown-grace: %v", err)}
		}
		grace = g
	}
	var sleep time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	tg := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if tg == nil {
		return []string{"terminationGracePeriodSeconds is not set"}
	}
	if total := time.Duration(*tg) * time.Second; total <= grace+sleep {
		return []string{fmt.Sprintf("terminationGracePeriodSeconds %v must exceed preStop %v + --shutdown-grace %v, or draining is cut short", total, sleep, grace)}
	}
	return nil
}

// parseGoMemLimit parses a GOMEMLIMIT value (bytes, or a B/KiB/MiB/GiB/TiB suffix).
func parseGoMemLimit(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v << u.shift, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func checkMemory(m *manifests) []string {
	c := mainContainer(m.deployment())
	var p []string
	lim, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		return []string{"no memory limit"}
	}
	alert := resource.NewQuantity(memoryAlert, resource.BinarySI)
	if lim.Cmp(*alert) <= 0 {
		p = append(p, fmt.Sprintf("memory limit %s is not above the %s alert: the container is killed before the alert can fire", lim.String(), alert.String()))
	}
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		v, err := parseGoMemLimit(e.Value)
		if err != nil {
			p = append(p, fmt.Sprintf("GOMEMLIMIT %q: %v", e.Value, err))
		} else if v >= memoryAlert || v >= lim.Value() {
			p = append(p, fmt.Sprintf("GOMEMLIMIT %s must stay below the memory alert and the limit", e.Value))
		}
		return p
	}
	return append(p, "GOMEMLIMIT is not set: the Go heap does not know the container's limit")
}

func checkService(m *manifests) []string {
	d := m.deployment()
	c := mainContainer(d)
	if len(m.services) != 1 {
		return []string{fmt.Sprintf("want one Service, have %d", len(m.services))}
	}
	s := m.services[0]
	var p []string
	if s.Spec.Type != corev1.ServiceTypeClusterIP {
		p = append(p, fmt.Sprintf("Service type %q, want ClusterIP (the Ingress is the public entry)", s.Spec.Type))
	}
	if !labelsMatch(s.Spec.Selector, d.Spec.Template.Labels) {
		p = append(p, fmt.Sprintf("Service selector %v does not select the Deployment's pods %v", s.Spec.Selector, d.Spec.Template.Labels))
	}
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != servicePort {
		p = append(p, fmt.Sprintf("Service: want one port %d", servicePort))
	} else if port, ok := resolvePort(c, s.Spec.Ports[0].TargetPort); !ok || port != serverPort {
		p = append(p, fmt.Sprintf("Service targetPort %s does not reach container port %d", s.Spec.Ports[0].TargetPort.String(), serverPort))
	}
	return p
}

func checkAutoscaling(m *manifests) []string {
	d := m.deployment()
	var p []string
	if len(m.hpas) != 1 || len(m.pdbs) != 1 {
		return []string{fmt.Sprintf("want one HorizontalPodAutoscaler and one PodDisruptionBudget, have %d and %d", len(m.hpas), len(m.pdbs))}
	}
	h, b := m.hpas[0], m.pdbs[0]
	if ref := h.Spec.ScaleTargetRef; ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		p = append(p, fmt.Sprintf("HPA targets %s %s/%s, not the Deployment", ref.APIVersion, ref.Kind, ref.Name))
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < minReplicas || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		p = append(p, fmt.Sprintf("HPA: minReplicas must be at least %d and at most maxReplicas", minReplicas))
	}
	var cpu, mem bool
	for _, mt := range h.Spec.Metrics {
		if mt.Type != autoscalingv2.ResourceMetricSourceType || mt.Resource == nil {
			continue
		}
		switch mt.Resource.Name {
		case corev1.ResourceCPU:
			cpu = mt.Resource.Target.AverageUtilization != nil && *mt.Resource.Target.AverageUtilization == 70
		case corev1.ResourceMemory:
			mem = mt.Resource.Target.AverageUtilization != nil || mt.Resource.Target.AverageValue != nil
		}
	}
	if !cpu || !mem {
		p = append(p, "HPA: want a CPU target of 70 % utilisation and a memory target")
	}
	if b.Spec.Selector == nil || !labelsMatch(b.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		p = append(p, "PDB selector does not select the Deployment's pods")
	}
	if b.Spec.MinAvailable == nil || b.Spec.MinAvailable.Type != intstr.Int {
		p = append(p, "PDB: want minAvailable as a number")
	} else {
		min := b.Spec.MinAvailable.IntVal
		if min < 2 || (d.Spec.Replicas != nil && min >= *d.Spec.Replicas) || (h.Spec.MinReplicas != nil && min >= *h.Spec.MinReplicas) {
			p = append(p, fmt.Sprintf("PDB minAvailable %d: want at least 2 and fewer than the replicas, so a node can drain", min))
		}
	}
	return p
}

// decodesToKey reports whether s is some base64 spelling of 32 bytes: the
// shape of a real PHI or audit key.
func decodesToKey(s string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(strings.TrimSpace(s)); err == nil && len(b) == 32 {
			return true
		}
	}
	return false
}

func checkSecret(m *manifests) []string {
	var p []string
	if len(m.secrets) == 0 {
		return []string{"no Secret"}
	}
	for _, s := range m.secrets {
		if s.Type != corev1.SecretTypeOpaque {
			p = append(p, fmt.Sprintf("Secret %s: type %q, want Opaque", s.Name, s.Type))
		}
		if len(s.Data) > 0 {
			p = append(p, fmt.Sprintf("Secret %s: use stringData with visible placeholders, not base64 data", s.Name))
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, secretMarker) {
				p = append(p, fmt.Sprintf("Secret %s: %s is not marked %s", s.Name, k, secretMarker))
			}
			if decodesToKey(v) {
				p = append(p, fmt.Sprintf("Secret %s: %s decodes to 32 bytes: it looks like a real key", s.Name, k))
			}
		}
	}
	return p
}

func checkSecretRefs(m *manifests) []string {
	keys := map[string]map[string]bool{}
	for _, s := range m.secrets {
		keys[s.Name] = map[string]bool{}
		for k := range s.StringData {
			keys[s.Name][k] = true
		}
		for k := range s.Data {
			keys[s.Name][k] = true
		}
	}
	var p []string
	fromSecret := map[string]bool{}
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if !keys[ref.Name][ref.Key] {
					p = append(p, fmt.Sprintf("container %s: env %s takes %s/%s, which the Secret manifests do not hold", c.Name, e.Name, ref.Name, ref.Key))
				}
				fromSecret[e.Name] = true
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil && keys[ef.SecretRef.Name] == nil {
					p = append(p, fmt.Sprintf("container %s: envFrom names Secret %s, which is not among the manifests", c.Name, ef.SecretRef.Name))
				}
			}
		}
	}
	for _, name := range requiredSecretEnv {
		if !fromSecret[name] {
			p = append(p, fmt.Sprintf("%s must come from the Secret (multi-replica mode)", name))
		}
	}
	return p
}

// annotation returns an ingress-nginx annotation.
func annotation(ing *networkingv1.Ingress, name string) string {
	return ing.Annotations["nginx.ingress.kubernetes.io/"+name]
}

func checkIngress(m *manifests) []string {
	if len(m.ingresses) == 0 {
		return []string{"no Ingress"}
	}
	c := mainContainer(m.deployment())
	corsArg, _ := flagValue(c.Args, "cors-origins")
	var p []string
	seen := map[string]bool{}
	for _, ing := range m.ingresses {
		where := "Ingress " + ing.Name
		if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
			p = append(p, where+": ingressClassName must be nginx (the annotations are ingress-nginx's)")
		}
		tlsHosts := map[string]bool{}
		for _, tls := range ing.Spec.TLS {
			for _, h := range tls.Hosts {
				tlsHosts[h] = tls.SecretName != ""
			}
		}
		if annotation(ing, "ssl-redirect") != "true" {
			p = append(p, where+": ssl-redirect must be \"true\"")
		}
		if annotation(ing, "enable-cors") != "true" {
			p = append(p, where+": enable-cors must be \"true\"")
		}
		origins := annotation(ing, "cors-allow-origin")
		if strings.Contains(origins, "*") || origins == "" {
			p = append(p, where+": cors-allow-origin must be an explicit allowlist")
		}
		if normList(origins) != normList(corsArg) {
			p = append(p, fmt.Sprintf("%s: cors-allow-origin %q differs from the Deployment's --cors-origins %q", where, origins, corsArg))
		}
		rpm, err := strconv.Atoi(annotation(ing, "limit-rpm"))
		if err != nil || rpm <= 0 {
			p = append(p, where+": limit-rpm must be a positive number")
		}
		if annotation(ing, "limit-burst-multiplier") == "" {
			p = append(p, where+": set limit-burst-multiplier (the default, 5, is far above the seed's bursts)")
		}
		read, err := strconv.Atoi(annotation(ing, "proxy-read-timeout"))
		if err != nil {
			p = append(p, where+": proxy-read-timeout must be a number of seconds")
		}
		if _, err := strconv.Atoi(annotation(ing, "proxy-send-timeout")); err != nil {
			p = append(p, where+": proxy-send-timeout must be a number of seconds")
		}
		for _, rule := range ing.Spec.Rules {
			if !tlsHosts[rule.Host] {
				p = append(p, fmt.Sprintf("%s: host %q has no TLS entry with a secret", where, rule.Host))
			}
			if rule.HTTP == nil {
				continue
			}
			for _, path := range rule.HTTP.Paths {
				z, ok := ingressPaths[path.Path]
				switch {
				case !ok:
					p = append(p, fmt.Sprintf("%s: path %q is not a known public path (health and /metrics stay internal)", where, path.Path))
					continue
				case seen[rule.Host+path.Path]:
					p = append(p, fmt.Sprintf("%s: path %q is routed twice", where, path.Path))
				}
				seen[rule.Host+path.Path] = true
				if b := annotation(ing, "proxy-body-size"); b != z.body {
					p = append(p, fmt.Sprintf("%s: path %s: proxy-body-size %q, the server takes %s", where, path.Path, b, z.body))
				}
				if rpm != z.rpm {
					p = append(p, fmt.Sprintf("%s: path %s: limit-rpm %d, the seed's zone has %d", where, path.Path, rpm, z.rpm))
				}
				if time.Duration(read)*time.Second <= z.serverTimeout {
					p = append(p, fmt.Sprintf("%s: path %s: proxy-read-timeout %ds must exceed the server's %v, or nginx answers 504 before the server's own answer", where, path.Path, read, z.serverTimeout))
				}
				p = append(p, checkBackend(m, where, path.Backend)...)
			}
		}
	}
	return p
}

// normList sorts a comma-separated list, for comparison.
func normList(s string) string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func checkBackend(m *manifests, where string, b networkingv1.IngressBackend) []string {
	if b.Service == nil {
		return []string{where + ": backend is not a Service"}
	}
	for _, s := range m.services {
		if s.Name != b.Service.Name {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if (b.Service.Port.Name != "" && sp.Name == b.Service.Port.Name) || (b.Service.Port.Number != 0 && sp.Port == b.Service.Port.Number) {
				return nil
			}
		}
		return []string{fmt.Sprintf("%s: Service %s has no port %s%d", where, s.Name, b.Service.Port.Name, b.Service.Port.Number)}
	}
	return []string{fmt.Sprintf("%s: Service %s is not among the manifests", where, b.Service.Name)}
}

func checkNetworkPolicy(m *manifests) []string {
	d := m.deployment()
	for _, np := range m.netpols {
		if !labelsMatch(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
			return []string{"NetworkPolicy " + np.Name + " does not select the Deployment's pods"}
		}
		for _, r := range np.Spec.Ingress {
			for _, port := range r.Ports {
				if port.Port != nil && port.Port.IntValue() == serverPort {
					return nil
				}
			}
		}
		return []string{"NetworkPolicy " + np.Name + ": no rule lets traffic reach port 8080"}
	}
	return []string{"no NetworkPolicy: any pod could reach the replicas and forge X-Forwarded-For"}
}

func checkMetadata(m *manifests) []string {
	var p []string
	for what, om := range m.metas() {
		if errs := validation.IsDNS1123Subdomain(om.Name); len(errs) > 0 {
			p = append(p, fmt.Sprintf("%s: name: %s", what, strings.Join(errs, "; ")))
		}
		if om.Namespace != "" {
			p = append(p, what+": manifests are namespace-less (kubectl apply -n ...)")
		}
		if om.Labels["app"] != appName {
			p = append(p, fmt.Sprintf("%s: want label app: %s", what, appName))
		}
		for k, v := range om.Labels {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				p = append(p, fmt.Sprintf("%s: label %s: %s", what, k, strings.Join(errs, "; ")))
			}
		}
	}
	return p
}

// checks is every semantic check, by name.
var checks = []struct {
	name  string
	check func(*manifests) []string
}{
	{"deployment", checkDeploymentShape},
	{"probes", checkProbes},
	{"resources", checkResources},
	{"security", checkSecurity},
	{"images", checkImages},
	{"volumes", checkVolumes},
	{"args", checkArgs},
	{"shutdown", checkShutdown},
	{"memory", checkMemory},
	{"service", checkService},
	{"autoscaling", checkAutoscaling},
	{"secret", checkSecret},
	{"secret refs", checkSecretRefs},
	{"ingress", checkIngress},
	{"network policy", checkNetworkPolicy},
	{"metadata", checkMetadata},
}

func TestManifests(t *testing.T) {
	m := loadManifests(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, problem := range c.check(m) {
				t.Error(problem)
			}
		})
	}
}

// TestChecksCatchMistakes breaks one thing in a copy of the manifests and
// expects the named check to report it: a check that cannot fail checks
// nothing.
func TestChecksCatchMistakes(t *testing.T) {
	good := loadManifests(t)
	dep := func(m *manifests) *appsv1.Deployment { return m.deployment() }
	ctr := func(m *manifests) *corev1.Container { return mainContainer(m.deployment()) }
	cases := []struct {
		name   string
		check  func(*manifests) []string
		break_ func(*manifests)
	}{
		{"replicas", checkDeploymentShape, func(m *manifests) { n := int32(1); dep(m).Spec.Replicas = &n }},
		{"no readiness probe", checkProbes, func(m *manifests) { ctr(m).ReadinessProbe = nil }},
		{"liveness on the ready path", checkProbes, func(m *manifests) { ctr(m).LivenessProbe.HTTPGet.Path = readyPath }},
		{"probe on the wrong port", checkProbes, func(m *manifests) { ctr(m).StartupProbe.HTTPGet.Port = intstr.FromInt32(9090) }},
		{"no memory limit", checkResources, func(m *manifests) { delete(ctr(m).Resources.Limits, corev1.ResourceMemory) }},
		{"runs as root", checkSecurity, func(m *manifests) {
			f := false
			ctr(m).SecurityContext.RunAsNonRoot = &f
		}},
		{"writable root", checkSecurity, func(m *manifests) { ctr(m).SecurityContext.ReadOnlyRootFilesystem = nil }},
		{"latest tag", checkImages, func(m *manifests) { ctr(m).Image = "registry.example.org/medserve:latest" }},
		{"no tag", checkImages, func(m *manifests) { ctr(m).Image = "registry.example.org:5000/medserve" }},
		{"data dir not mounted", checkVolumes, func(m *manifests) { ctr(m).Args = append(ctr(m).Args, "--data-dir=/srv/state") }},
		{"models writable", checkVolumes, func(m *manifests) {
			for i := range ctr(m).VolumeMounts {
				ctr(m).VolumeMounts[i].ReadOnly = false
			}
		}},
		{"no TLS proxy flag", checkArgs, func(m *manifests) {
			ctr(m).Args = slices.DeleteFunc(ctr(m).Args, func(a string) bool { return a == "--behind-tls-proxy" })
		}},
		{"bad proxy CIDR", checkArgs, func(m *manifests) { ctr(m).Args = append(ctr(m).Args, "--trusted-proxies=10.0.0.0/33") }},
		{"auth off", checkArgs, func(m *manifests) { ctr(m).Args = append(ctr(m).Args, "--insecure-no-auth") }},
		{"grace too short", checkShutdown, func(m *manifests) { s := int64(10); dep(m).Spec.Template.Spec.TerminationGracePeriodSeconds = &s }},
		{"limit at the alert", checkMemory, func(m *manifests) { ctr(m).Resources.Limits[corev1.ResourceMemory] = resource.MustParse("8Gi") }},
		{"selector mismatch", checkService, func(m *manifests) { m.services[0].Spec.Selector = map[string]string{"app": "medserve-canary"} }},
		{"service to the wrong port", checkService, func(m *manifests) { m.services[0].Spec.Ports[0].TargetPort = intstr.FromString("metrics") }},
		{"HPA targets another deployment", checkAutoscaling, func(m *manifests) { m.hpas[0].Spec.ScaleTargetRef.Name = "other" }},
		{"PDB blocks drains", checkAutoscaling, func(m *manifests) { v := intstr.FromInt32(3); m.pdbs[0].Spec.MinAvailable = &v }},
		{"real-looking key", checkSecret, func(m *manifests) {
			m.secrets[0].StringData["MEDSERVE_PHI_KEY"] = base64.StdEncoding.EncodeToString(make([]byte, 32))
		}},
		{"env from a missing key", checkSecretRefs, func(m *manifests) {
			ctr(m).Env = append(ctr(m).Env, corev1.EnvVar{Name: "MEDSERVE_METRICS_TOKEN", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "medserve-secrets"}, Key: "MEDSERVE_METRICS_TOKEN"}}})
		}},
		{"PHI key not from the secret", checkSecretRefs, func(m *manifests) {
			ctr(m).Env = slices.DeleteFunc(ctr(m).Env, func(e corev1.EnvVar) bool { return e.Name == "MEDSERVE_PHI_KEY" })
		}},
		{"CORS wildcard", checkIngress, func(m *manifests) {
			m.ingresses[0].Annotations["nginx.ingress.kubernetes.io/cors-allow-origin"] = "*"
		}},
		{"read timeout below the server's", checkIngress, func(m *manifests) {
			for _, ing := range m.ingresses {
				ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] = "5"
			}
		}},
		{"metrics exposed", checkIngress, func(m *manifests) {
			ing := m.ingresses[0]
			path := ing.Spec.Rules[0].HTTP.Paths[0]
			path.Path = "/metrics"
			ing.Spec.Rules[0].HTTP.Paths = append(ing.Spec.Rules[0].HTTP.Paths, path)
		}},
		{"ingress to a missing service", checkIngress, func(m *manifests) {
			m.ingresses[0].Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "medserve-v2"
		}},
		{"no TLS", checkIngress, func(m *manifests) { m.ingresses[0].Spec.TLS = nil }},
		{"tensor bodies cut at 1 MiB", checkIngress, func(m *manifests) {
			for _, ing := range m.ingresses {
				ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"] = "1m"
			}
		}},
		{"clinical zone at the inference rate", checkIngress, func(m *manifests) {
			for _, ing := range m.ingresses {
				ing.Annotations["nginx.ingress.kubernetes.io/limit-rpm"] = "60"
			}
		}},
		{"network policy misses the pods", checkNetworkPolicy, func(m *manifests) {
			m.netpols[0].Spec.PodSelector.MatchLabels = map[string]string{"app": "other"}
		}},
		{"namespace set", checkMetadata, func(m *manifests) { m.services[0].Namespace = "prod" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := good.clone()
			if p := c.check(m); len(p) != 0 {
				t.Fatalf("the unbroken manifests already fail: %v", p)
			}
			c.break_(m)
			if p := c.check(m); len(p) == 0 {
				t.Error("the check did not notice")
			}
		})
	}
}

// TestDecodeRejects feeds decodeDocument documents the API server would
// refuse, most of them made by breaking deployment.yaml.
func TestDecodeRejects(t *testing.T) {
	b, err := os.ReadFile("deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	if _, err := decodeDocument(b); err != nil {
		t.Fatalf("deployment.yaml itself: %v", err)
	}
	mutate := func(old, new string) string {
		t.Helper()
		if !strings.Contains(src, old) {
			t.Fatalf("deployment.yaml no longer contains %q: update the test", old)
		}
		return strings.Replace(src, old, new, 1)
	}
	cases := []struct {
		name, doc string
		want      error // nil: any error
	}{
		{"unknown field", mutate("\n  replicas: 3\n", "\n  replica: 3\n"), nil},
		{"field name in the wrong case", mutate("\n  replicas: 3\n", "\n  Replicas: 3\n"), nil},
		{"nested unknown field", mutate("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"), nil},
		{"duplicate key", mutate("\n  replicas: 3\n", "\n  replicas: 3\n  replicas: 4\n"), nil},
		{"bad quantity", mutate("memory: 10Gi", "memory: 10 GB"), nil},
		{"wrong value type", mutate("\n  replicas: 3\n", "\n  replicas: three\n"), nil},
		{"unknown kind", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n", errUnknownKind},
		{"old apiVersion", mutate("apiVersion: apps/v1", "apiVersion: extensions/v1beta1"), errUnknownKind},
		{"not YAML", "apiVersion: v1\nkind: Service\n  metadata: [\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeDocument([]byte(c.doc))
			if err == nil {
				t.Fatal("decoded without error")
			}
			t.Log(err)
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	in := "# header only\n---\napiVersion: v1\nkind: Service\n---   \n# comment\n\n---\nkind: Secret\n"
	docs := splitDocuments([]byte(in))
	if len(docs) != 2 {
		t.Fatalf("got %d documents, want 2: %q", len(docs), docs)
	}
	if !strings.Contains(string(docs[0]), "kind: Service") || !strings.Contains(string(docs[1]), "kind: Secret") {
		t.Fatalf("documents out of order: %q", docs)
	}
}

// dockerfile is the parsed deploy/Dockerfile: its instructions, with
// continuation lines joined, per stage.
type dockerfile struct {
	stages [][]string // each instruction "KEYWORD args"
}

func parseDockerfile(b []byte) dockerfile {
	var df dockerfile
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			df.stages = append(df.stages, nil)
		}
		if len(df.stages) > 0 {
			df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], line)
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		s := strings.TrimSpace(line)
		if strings.HasPrefix(s, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(s, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(s)
		flush()
	}
	flush()
	return df
}

// instr returns the arguments of the instructions of stage with keyword.
func instr(stage []string, keyword string) []string {
	var out []string
	for _, in := range stage {
		k, rest, _ := strings.Cut(in, " ")
		if strings.EqualFold(k, keyword) {
			out = append(out, strings.TrimSpace(rest))
		}
	}
	return out
}

// TestDockerfile checks the image against the manifests: it cannot be
// built here (no container engine), so what can be read is checked.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := parseDockerfile(b)
	if len(df.stages) < 2 {
		t.Fatalf("want a multi-stage build, have %d stage(s)", len(df.stages))
	}
	build, final := df.stages[0], df.stages[len(df.stages)-1]
	for i, st := range df.stages {
		from := instr(st, "FROM")[0]
		if tag, digest := imageTag(strings.Fields(from)[0]); tag == "latest" || (tag == "" && !digest && strings.Fields(from)[0] != "scratch") {
			t.Errorf("stage %d: FROM %s is not pinned to a tag or digest", i, from)
		}
	}
	if from := instr(build, "FROM")[0]; !strings.HasPrefix(from, "golang:1.26") {
		t.Errorf("build stage FROM %s, want golang:1.26", from)
	}
	var built bool
	for _, run := range instr(build, "RUN") {
		if strings.Contains(run, "go build") {
			built = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-o /medserve ./cmd/medserve"} {
				if !strings.Contains(run, want) {
					t.Errorf("go build lacks %s: %s", want, run)
				}
			}
		}
	}
	if !built {
		t.Error("the build stage has no go build")
	}
	if from := instr(final, "FROM")[0]; !strings.HasPrefix(from, "gcr.io/distroless/static") && from != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static or scratch", from)
	}

	m := loadManifests(t)
	d := m.deployment()
	c := mainContainer(d)
	users := instr(final, "USER")
	if len(users) != 1 {
		t.Fatalf("final stage: want one USER, have %v", users)
	}
	uid, _, _ := strings.Cut(users[0], ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %s: want a numeric non-root uid (runAsNonRoot can only verify a number)", users[0])
	} else if u := d.Spec.Template.Spec.SecurityContext.RunAsUser; u == nil || *u != int64(n) || n != runtimeUID {
		t.Errorf("USER %d and the pod's runAsUser differ (want %d)", n, runtimeUID)
	}
	if exp := instr(final, "EXPOSE"); len(exp) != 1 || exp[0] != strconv.Itoa(serverPort) {
		t.Errorf("EXPOSE %v, want %d", exp, serverPort)
	}
	ep := instr(final, "ENTRYPOINT")
	var entry []string
	if len(ep) != 1 || json.Unmarshal([]byte(ep[0]), &entry) != nil || !slices.Equal(entry, []string{"/medserve", "serve"}) {
		t.Errorf("ENTRYPOINT %v, want the exec form [\"/medserve\", \"serve\"] (the Deployment passes flags only)", ep)
	}
	// The image's defaults and the Deployment's flags name the same paths.
	env := strings.Join(instr(final, "ENV"), " ")
	for flag, variable := range map[string]string{"models": "MEDSERVE_MODELS", "data-dir": "MEDSERVE_DATA_DIR"} {
		v, _ := flagValue(c.Args, flag)
		if !strings.Contains(env, variable+"="+v) {
			t.Errorf("ENV %s should be %s, the Deployment's --%s", variable, v, flag)
		}
	}
	var models bool
	for _, cp := range instr(final, "COPY") {
		if strings.Contains(cp, "models/ /models/") {
			models = true
		}
	}
	if !models {
		t.Error("the final stage does not copy models/ to /models/")
	}
}
