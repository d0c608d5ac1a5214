package deploy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tern-im/tern/internal/testenv"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/store/mongo"
)

// Paths the configurations use for their certificates; the tests put a
// throwaway certificate there instead (in a copy of the configuration).
const (
	haproxyCertPath = "/usr/local/etc/haproxy/certs/tern.pem"
	nginxCertPath   = "/etc/nginx/tls/tern.crt"
	nginxKeyPath    = "/etc/nginx/tls/tern.key"
)

// ---------------------------------------------------------------------------
// Loading

// yamlDoc is one document of a YAML file.
type yamlDoc struct {
	file string
	m    map[string]any
}

// loadYAML parses every YAML file under deploy/, all documents of each.
func loadYAML(t *testing.T) map[string][]yamlDoc {
	t.Helper()
	out := map[string][]yamlDoc{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s, document %d: %w", path, i+1, err)
			}
			if m == nil { // an empty document between two ---
				continue
			}
			out[filepath.ToSlash(path)] = append(out[filepath.ToSlash(path)], yamlDoc{file: path, m: m})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// get walks nested maps and lists: get(m, "spec", "template", 0, "name").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func num(t *testing.T, what string, v any) int {
	t.Helper()
	n, ok := v.(int)
	if !ok {
		t.Fatalf("%s: %v (%T) is not an integer", what, v, v)
	}
	return n
}

func dur(t *testing.T, what, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %q is not a duration: %v", what, s, err)
	}
	return d
}

// serveFlags lists the flags of `tern serve`, read from its source: every
// TERN_* variable and --flag the deployment files use must be one of them.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	src := readFile(t, "../cmd/tern/serve.go")
	re := regexp.MustCompile(`fs\.(?:String|Int|Bool|Duration|Float)\(&[^,]+,\s*"([a-z0-9-]+)"`)
	flags := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		flags[m[1]] = true
	}
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in cmd/tern/serve.go; has the flag syntax changed?", len(flags))
	}
	return flags
}

func envName(flag string) string {
	return "TERN_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// checkEnvNames fails for every TERN_* name that no serve flag reads.
func checkEnvNames(t *testing.T, where string, names []string) {
	t.Helper()
	flags := serveFlags(t)
	known := map[string]bool{}
	for f := range flags {
		known[envName(f)] = true
	}
	for _, n := range names {
		if strings.HasPrefix(n, "TERN_") && !known[n] {
			t.Errorf("%s: %s is not the variable of any `tern serve` flag", where, n)
		}
	}
}

// ---------------------------------------------------------------------------
// YAML everywhere

func TestYAMLParses(t *testing.T) {
	docs := loadYAML(t)
	for _, want := range []string{"compose/compose.yaml", "k8s/deployment.yaml", "k8s/kustomization.yaml",
		"prometheus/alerts.yaml", "prometheus/prometheus.yml"} {
		if len(docs[want]) == 0 {
			t.Errorf("%s: missing or empty", want)
		}
	}
	t.Logf("%d YAML files parsed", len(docs))
}

// ---------------------------------------------------------------------------
// Kubernetes

// k8sObjects returns the manifests under k8s/ by kind (one each).
func k8sObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	for path, ds := range loadYAML(t) {
		if !strings.HasPrefix(path, "k8s/") {
			continue
		}
		for _, d := range ds {
			kind := str(d.m["kind"])
			if kind == "" {
				t.Errorf("%s: a document without kind", path)
				continue
			}
			if _, dup := objs[kind]; dup && kind != "Kustomization" {
				t.Errorf("%s: a second %s", path, kind)
			}
			objs[kind] = d.m
		}
	}
	for _, k := range []string{"Namespace", "ConfigMap", "Secret", "Deployment", "Service",
		"PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress", "Kustomization"} {
		if objs[k] == nil {
			t.Fatalf("k8s/: no %s", k)
		}
	}
	return objs
}

func TestKubernetesDeployment(t *testing.T) {
	objs := k8sObjects(t)
	dep := objs["Deployment"]
	cm := get(objs["ConfigMap"], "data").(map[string]any)

	if n := num(t, "replicas", get(dep, "spec", "replicas")); n != 3 {
		t.Errorf("Deployment replicas %d, want 3", n)
	}
	// A rolling update starts the new pod before stopping an old one, so
	// capacity never drops.
	if n := num(t, "maxUnavailable", get(dep, "spec", "strategy", "rollingUpdate", "maxUnavailable")); n != 0 {
		t.Errorf("rolling update maxUnavailable %d, want 0", n)
	}
	if n := num(t, "maxSurge", get(dep, "spec", "strategy", "rollingUpdate", "maxSurge")); n != 1 {
		t.Errorf("rolling update maxSurge %d, want 1", n)
	}
	pod := get(dep, "spec", "template", "spec")
	containers, _ := get(pod, "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("want one container, have %d", len(containers))
	}
	c := containers[0]

	// Probes: readiness on /readyz (drain and store health), liveness on
	// /healthz (only a hung process is restarted).
	if p := str(get(c, "readinessProbe", "httpGet", "path")); p != "/readyz" {
		t.Errorf("readinessProbe path %q, want /readyz", p)
	}
	if p := str(get(c, "livenessProbe", "httpGet", "path")); p != "/healthz" {
		t.Errorf("livenessProbe path %q, want /healthz", p)
	}
	port := str(get(c, "ports", 0, "containerPort"))
	if !strings.HasSuffix(str(cm["TERN_ADDR"]), ":"+port) {
		t.Errorf("container port %s does not match TERN_ADDR %v", port, cm["TERN_ADDR"])
	}
	if str(cm["TERN_INSECURE_HTTP"]) != "true" {
		t.Error("plain HTTP on 0.0.0.0 needs TERN_INSECURE_HTTP=true (TLS ends at the Ingress)")
	}

	// Stopping: preStop, then the drain delay, then the shutdown grace must
	// all fit in the termination grace period.
	preStop := num(t, "preStop sleep", get(c, "lifecycle", "preStop", "sleep", "seconds"))
	drain := dur(t, "TERN_DRAIN_DELAY", str(cm["TERN_DRAIN_DELAY"]))
	grace := dur(t, "TERN_SHUTDOWN_GRACE", str(cm["TERN_SHUTDOWN_GRACE"]))
	term := time.Duration(num(t, "terminationGracePeriodSeconds", get(pod, "terminationGracePeriodSeconds"))) * time.Second
	if need := time.Duration(preStop)*time.Second + drain + grace; term <= need {
		t.Errorf("terminationGracePeriodSeconds %v leaves no margin over preStop %ds + drain %v + grace %v", term, preStop, drain, grace)
	}
	if preStop < 5 {
		t.Errorf("preStop sleeps %ds: too short for endpoint removal to propagate", preStop)
	}

	// The node id is the pod name.
	var nodeID any
	for _, e := range get(c, "env").([]any) {
		if str(get(e, "name")) == "TERN_NODE_ID" {
			nodeID = get(e, "valueFrom", "fieldRef", "fieldPath")
		}
	}
	if str(nodeID) != "metadata.name" {
		t.Errorf("TERN_NODE_ID comes from %v, want the downward API's metadata.name", nodeID)
	}

	// Non-root, read-only, no privileges.
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if get(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("container readOnlyRootFilesystem is not true")
	}
	if get(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container allowPrivilegeEscalation is not false")
	}
	if caps := str(get(c, "securityContext", "capabilities", "drop")); caps != "[ALL]" {
		t.Errorf("capabilities drop %s, want [ALL]", caps)
	}
	// The HPA's CPU percentage is of the request.
	if get(c, "resources", "requests", "cpu") == nil || get(c, "resources", "limits", "memory") == nil {
		t.Error("resources: need a CPU request (the HPA measures against it) and a memory limit")
	}

	// Every TERN_* setting is a real flag.
	var names []string
	for k := range cm {
		names = append(names, k)
	}
	for k := range get(objs["Secret"], "stringData").(map[string]any) {
		names = append(names, k)
	}
	checkEnvNames(t, "k8s ConfigMap/Secret", names)

	// The Service and the PDB select the Deployment's pods.
	podLabels := get(dep, "spec", "template", "metadata", "labels").(map[string]any)
	for _, sel := range []struct {
		kind string
		m    any
	}{
		{"Service", get(objs["Service"], "spec", "selector")},
		{"PodDisruptionBudget", get(objs["PodDisruptionBudget"], "spec", "selector", "matchLabels")},
		{"Deployment", get(dep, "spec", "selector", "matchLabels")},
	} {
		m, _ := sel.m.(map[string]any)
		if len(m) == 0 {
			t.Errorf("%s: empty selector", sel.kind)
		}
		for k, v := range m {
			if podLabels[k] != v {
				t.Errorf("%s selects %s=%v, which the pods do not carry", sel.kind, k, v)
			}
		}
	}
}

func TestKubernetesDisruptionAndScaling(t *testing.T) {
	objs := k8sObjects(t)
	pdb, hpa := objs["PodDisruptionBudget"], objs["HorizontalPodAutoscaler"]
	// One eviction at a time, however many pods the HPA runs (minAvailable
	// would allow evicting all but that many).
	if v := get(pdb, "spec", "minAvailable"); v != nil {
		t.Errorf("PDB minAvailable %v: use maxUnavailable", v)
	}
	if n := num(t, "maxUnavailable", get(pdb, "spec", "maxUnavailable")); n != 1 {
		t.Errorf("PDB maxUnavailable %d, want 1", n)
	}
	if v := str(hpa["apiVersion"]); v != "autoscaling/v2" {
		t.Errorf("HPA apiVersion %s, want autoscaling/v2", v)
	}
	if k, n := str(get(hpa, "spec", "scaleTargetRef", "kind")), str(get(hpa, "spec", "scaleTargetRef", "name")); k != "Deployment" || n != str(get(objs["Deployment"], "metadata", "name")) {
		t.Errorf("HPA targets %s/%s, not the Deployment", k, n)
	}
	// One pod evicted must leave two to carry its sockets.
	if min := num(t, "minReplicas", get(hpa, "spec", "minReplicas")); min < 3 {
		t.Errorf("HPA minReplicas %d, want at least 3", min)
	}
	cpu := false
	for _, m := range get(hpa, "spec", "metrics").([]any) {
		if str(get(m, "type")) == "Resource" && str(get(m, "resource", "name")) == "cpu" &&
			str(get(m, "resource", "target", "type")) == "Utilization" {
			u := num(t, "averageUtilization", get(m, "resource", "target", "averageUtilization"))
			cpu = u > 0 && u <= 90
		}
	}
	if !cpu {
		t.Error("HPA has no CPU utilization target in (0, 90]")
	}
}

func TestKubernetesIngressAndSecrets(t *testing.T) {
	objs := k8sObjects(t)
	idle := server.DefaultConfig().IdleTimeout
	ann, _ := get(objs["Ingress"], "metadata", "annotations").(map[string]any)
	for _, k := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
		s, err := strconv.Atoi(str(ann[k]))
		if err != nil || time.Duration(s)*time.Second <= idle {
			t.Errorf("Ingress %s = %v: want seconds above Tern's idle timeout (%v), or quiet sockets are cut", k, ann[k], idle)
		}
	}
	// The Secret holds placeholders only.
	for k, v := range get(objs["Secret"], "stringData").(map[string]any) {
		if !strings.Contains(str(v), "CHANGE_ME") {
			t.Errorf("Secret %s has no CHANGE_ME placeholder: real secrets never go in the repository", k)
		}
	}
	// kustomization.yaml lists every manifest, and only existing ones.
	var listed []string
	for _, r := range get(objs["Kustomization"], "resources").([]any) {
		listed = append(listed, str(r))
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(listed, base) {
			t.Errorf("k8s/%s is not listed in kustomization.yaml", base)
		}
	}
	for _, r := range listed {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Compose

func composeFile(t *testing.T) map[string]any {
	t.Helper()
	ds := loadYAML(t)["compose/compose.yaml"]
	if len(ds) != 1 {
		t.Fatalf("compose.yaml: %d documents, want 1", len(ds))
	}
	return ds[0].m
}

func TestCompose(t *testing.T) {
	c := composeFile(t)
	services := c["services"].(map[string]any)
	flags := serveFlags(t)

	// One-shot jobs: what another service waits on with
	// service_completed_successfully. They need no health check.
	jobs := map[string]bool{}
	for _, s := range services {
		deps, _ := get(s, "depends_on").(map[string]any)
		for name, d := range deps {
			if str(get(d, "condition")) == "service_completed_successfully" {
				jobs[name] = true
			}
		}
	}

	var ternNodes []string
	nodeIDs := map[string]bool{}
	for name, s := range services {
		if !jobs[name] {
			if get(s, "healthcheck", "test") == nil {
				t.Errorf("service %s has no healthcheck", name)
			}
			if r := str(get(s, "restart")); r != "unless-stopped" && r != "always" && r != "on-failure" {
				t.Errorf("service %s: restart %q, want a policy that restarts it", name, r)
			}
		} else if r := str(get(s, "restart")); r != "no" {
			t.Errorf("job %s: restart %q, want \"no\" (it runs once)", name, r)
		}
		deps, _ := get(s, "depends_on").(map[string]any)
		for dep, d := range deps {
			if services[dep] == nil {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
			switch str(get(d, "condition")) {
			case "service_started", "service_healthy", "service_completed_successfully":
			default:
				t.Errorf("service %s: depends_on %s without a condition", name, dep)
			}
		}
		if !regexp.MustCompile(`^tern-\d+$`).MatchString(name) {
			continue
		}
		ternNodes = append(ternNodes, name)

		// The command is `tern serve` in cluster mode, on all interfaces
		// with plain HTTP (TLS ends at HAProxy), with its own node id.
		var args []string
		for _, a := range get(s, "command").([]any) {
			args = append(args, str(a))
		}
		if len(args) == 0 || args[0] != "serve" {
			t.Errorf("%s: command %v does not start with serve", name, args)
		}
		argv := map[string]string{}
		for i := 1; i < len(args); i++ {
			f, ok := strings.CutPrefix(args[i], "--")
			if !ok {
				t.Errorf("%s: stray argument %q", name, args[i])
				continue
			}
			if !flags[f] {
				t.Errorf("%s: --%s is not a `tern serve` flag", name, f)
			}
			if f == "insecure-http" {
				argv[f] = "true"
				continue
			}
			if i+1 < len(args) {
				argv[f] = args[i+1]
				i++
			}
		}
		want := map[string]string{"addr": "0.0.0.0:8080", "insecure-http": "true", "store": "mongo",
			"router": "rabbitmq", "node-id": name}
		for f, v := range want {
			if argv[f] != v {
				t.Errorf("%s: --%s %q, want %q", name, f, argv[f], v)
			}
		}
		nodeIDs[argv["node-id"]] = true

		env := get(s, "environment").(map[string]any)
		var names []string
		for k := range env {
			names = append(names, k)
		}
		checkEnvNames(t, "compose "+name, names)
		for _, k := range []string{"TERN_MONGO_URI", "TERN_AMQP_URL"} {
			if str(env[k]) == "" {
				t.Errorf("%s: %s is not set", name, k)
			}
		}
		if !strings.Contains(str(env["TERN_MONGO_URI"]), "replicaSet=") {
			t.Errorf("%s: TERN_MONGO_URI names no replica set", name)
		}
		if str(env["TERN_TRUST_PROXY"]) != "true" {
			t.Errorf("%s: behind HAProxy the node must trust X-Forwarded-For", name)
		}
		// Docker must not SIGKILL a node mid-drain.
		drain := dur(t, name+" TERN_DRAIN_DELAY", str(env["TERN_DRAIN_DELAY"]))
		grace := dur(t, name+" TERN_SHUTDOWN_GRACE", str(env["TERN_SHUTDOWN_GRACE"]))
		if sg := dur(t, name+" stop_grace_period", str(get(s, "stop_grace_period"))); sg <= drain+grace {
			t.Errorf("%s: stop_grace_period %v, not above drain %v + shutdown grace %v", name, sg, drain, grace)
		}
		if conds := get(s, "depends_on"); get(conds, "mongo-init", "condition") != "service_completed_successfully" ||
			get(conds, "rabbitmq", "condition") != "service_healthy" {
			t.Errorf("%s: must wait for the replica set (mongo-init completed) and a healthy RabbitMQ", name)
		}
		if p := str(get(s, "ports")); p != "" {
			t.Errorf("%s publishes ports %s: only HAProxy may be reachable (nodes trust X-Forwarded-For)", name, p)
		}
	}
	sort.Strings(ternNodes)
	if len(ternNodes) != 3 {
		t.Errorf("compose has Tern services %v, want 3", ternNodes)
	}
	if len(ternNodes) == 0 {
		t.FailNow()
	}
	if len(nodeIDs) != len(ternNodes) {
		t.Errorf("node ids are not unique: %v", nodeIDs)
	}

	// MongoDB: three members of one replica set, initiated by the job.
	var members []string
	for name, s := range services {
		if img := str(get(s, "image")); strings.HasPrefix(img, "mongo:") && !jobs[name] {
			members = append(members, name)
			if !strings.Contains(str(get(s, "command")), "--replSet rs0") {
				t.Errorf("%s is not started as a member of rs0", name)
			}
		}
	}
	if len(members) != 3 {
		t.Errorf("MongoDB members %v, want 3", members)
	}
	script := readFile(t, "compose/mongo-init.js")
	for _, m := range members {
		if !strings.Contains(script, `"`+m+`:27017"`) {
			t.Errorf("compose/mongo-init.js does not add %s to the replica set", m)
		}
	}
	if !strings.Contains(script, "rs.initiate") {
		t.Error("compose/mongo-init.js does not call rs.initiate")
	}
	if !strings.HasPrefix(str(get(services, "rabbitmq", "image")), "rabbitmq:4.1-management") {
		t.Errorf("rabbitmq image %v, want rabbitmq:4.1-management", get(services, "rabbitmq", "image"))
	}

	// HAProxy: mounts the checked configuration and a certificate folder,
	// and that configuration lists exactly the Tern services.
	hap := services["haproxy"]
	vols := str(get(hap, "volumes"))
	if !strings.Contains(vols, "../haproxy/haproxy.cfg:") || !strings.Contains(vols, filepath.Dir(haproxyCertPath)) {
		t.Errorf("haproxy volumes %s: want ../haproxy/haproxy.cfg and the certificate folder", vols)
	}
	cfg := readFile(t, "haproxy/haproxy.cfg")
	var servers []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+(\S+)\s+(\S+):8080\b`).FindAllStringSubmatch(cfg, -1) {
		if m[1] != m[2] {
			t.Errorf("haproxy.cfg: server %s points at %s", m[1], m[2])
		}
		servers = append(servers, m[2])
	}
	sort.Strings(servers)
	if !slices.Equal(servers, ternNodes) {
		t.Errorf("haproxy.cfg servers %v, compose Tern services %v", servers, ternNodes)
	}
	hardStop := regexp.MustCompile(`(?m)^\s*hard-stop-after\s+(\S+)`).FindStringSubmatch(cfg)
	if hardStop == nil {
		t.Error("haproxy.cfg: no hard-stop-after (a soft stop would wait for WebSockets forever)")
	} else if sg := dur(t, "haproxy stop_grace_period", str(get(hap, "stop_grace_period"))); sg <= dur(t, "hard-stop-after", hardStop[1]) {
		t.Errorf("haproxy stop_grace_period %v not above hard-stop-after %s", sg, hardStop[1])
	}

	// Prometheus mounts the rules this package checks.
	if v := str(get(services, "prometheus", "volumes")); !strings.Contains(v, "../prometheus/alerts.yaml:") {
		t.Errorf("prometheus volumes %s do not mount ../prometheus/alerts.yaml", v)
	}

	// Every file the compose file mounts exists.
	for name, s := range services {
		vs, _ := get(s, "volumes").([]any)
		for _, v := range vs {
			src, _, _ := strings.Cut(str(v), ":")
			if !strings.HasPrefix(src, ".") || src == "./certs" {
				continue // a named volume, or the operator's certificates
			}
			if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}
	if ctx := str(get(services, ternNodes[0], "build", "context")); ctx != "../.." {
		t.Errorf("build context %q, want the repository root", ctx)
	} else if df := str(get(services, ternNodes[0], "build", "dockerfile")); df != "deploy/Dockerfile" {
		t.Errorf("dockerfile %q, want deploy/Dockerfile", df)
	}
}

// ---------------------------------------------------------------------------
// Dockerfile

func TestDockerfile(t *testing.T) {
	df := readFile(t, "Dockerfile")
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a build stage and a runtime stage", n)
	}
	if !regexp.MustCompile(`(?m)^FROM golang:\$\{GO_VERSION\}|^FROM golang:1\.26`).MatchString(df) ||
		!strings.Contains(df, "ARG GO_VERSION=1.26") {
		t.Error("Dockerfile does not build with golang:1.26")
	}
	for _, want := range []string{"./cmd/tern", "./deploy/probe", "CGO_ENABLED=0", `ENTRYPOINT ["/usr/local/bin/tern"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 {
		t.Fatal("Dockerfile sets no USER: the container would run as root")
	}
	if u := users[len(users)-1][1]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("final USER is %s", u)
	}
	if _, err := os.Stat("probe/main.go"); err != nil {
		t.Error(err)
	}
}

// ---------------------------------------------------------------------------
// TLS and timeouts shared by the load balancers

// checkCiphers fails for any TLS 1.2 suite that is not ECDHE with an AEAD.
func checkCiphers(t *testing.T, where, list string) {
	t.Helper()
	suites := strings.Split(list, ":")
	if len(suites) == 0 || list == "" {
		t.Errorf("%s: no cipher list", where)
	}
	for _, s := range suites {
		if !strings.HasPrefix(s, "ECDHE-") || !(strings.Contains(s, "-GCM-") || strings.Contains(s, "CHACHA20-POLY1305")) {
			t.Errorf("%s: cipher %s is not ECDHE with an AEAD", where, s)
		}
	}
}

func TestHAProxyConfigFacts(t *testing.T) {
	cfg := uncommented(readFile(t, "haproxy/haproxy.cfg"))
	field := func(directive string) string {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(directive) + `\s+(.+)$`).FindStringSubmatch(cfg)
		if m == nil {
			t.Errorf("haproxy.cfg: no %s", directive)
			return ""
		}
		return strings.TrimSpace(m[1])
	}
	checkCiphers(t, "haproxy.cfg", field("ssl-default-bind-ciphers"))
	if o := field("ssl-default-bind-options"); !strings.Contains(o, "ssl-min-ver TLSv1.2") {
		t.Errorf("haproxy.cfg: ssl-default-bind-options %q lacks ssl-min-ver TLSv1.2", o)
	}
	if tun := dur(t, "timeout tunnel", field("timeout tunnel")); tun <= server.DefaultConfig().IdleTimeout {
		t.Errorf("timeout tunnel %v is not above Tern's idle timeout %v", tun, server.DefaultConfig().IdleTimeout)
	}
	if !regexp.MustCompile(`http-check send meth GET uri /readyz`).MatchString(cfg) || field("http-check expect") != "status 200" {
		t.Error("haproxy.cfg: health checks must GET /readyz and expect 200")
	}
	if b := field("balance"); b != "leastconn" && b != "roundrobin" {
		t.Errorf("haproxy.cfg: balance %s", b)
	}
	if regexp.MustCompile(`(?m)^\s*(cookie|stick)`).MatchString(cfg) {
		t.Error("haproxy.cfg: stickiness configured; any node serves any device")
	}
	// Tern reads the last X-Forwarded-For entry: HAProxy must always add
	// its own (if-none would skip it when the client sent one).
	if m := regexp.MustCompile(`(?m)^\s*option\s+forwardfor\b(.*)$`).FindStringSubmatch(cfg); m == nil {
		t.Error("haproxy.cfg: no option forwardfor (the client address in X-Forwarded-For)")
	} else if strings.Contains(m[1], "if-none") {
		t.Error("haproxy.cfg: option forwardfor if-none lets a client-sent X-Forwarded-For stand")
	}
	if regexp.MustCompile(`(?mi)^\s*http-request\s+del-header\s+X-Forwarded-For`).MatchString(cfg) {
		t.Error("haproxy.cfg deletes X-Forwarded-For")
	}
	// Go's router serves /metrics for /%6Detrics: the deny must match the
	// decoded path.
	if deny := regexp.MustCompile(`(?m)^\s*http-request deny .*/metrics.*$`).FindString(cfg); !strings.Contains(deny, "path,url_dec") {
		t.Errorf("haproxy.cfg: the /metrics deny %q does not match the decoded path (path,url_dec)", strings.TrimSpace(deny))
	}
	if regexp.MustCompile(`on-marked-down\s+shutdown-sessions`).MatchString(cfg) {
		t.Error("haproxy.cfg: shutdown-sessions would cut every socket of a node whose store blinked")
	}
	// Drain: checks must notice a 503 within the compose drain delay.
	inter := dur(t, "check inter", regexp.MustCompile(`\binter\s+(\S+)`).FindStringSubmatch(cfg)[1])
	fall, _ := strconv.Atoi(regexp.MustCompile(`\bfall\s+(\d+)`).FindStringSubmatch(cfg)[1])
	env := get(composeFile(t), "services", "tern-1", "environment")
	if drain := dur(t, "TERN_DRAIN_DELAY", str(get(env, "TERN_DRAIN_DELAY"))); time.Duration(fall)*inter >= drain {
		t.Errorf("HAProxy needs %d x %v to mark a draining node down, not less than the drain delay %v", fall, inter, drain)
	}
}

func TestNginxConfigFacts(t *testing.T) {
	cfg := uncommented(readFile(t, "nginx/nginx.conf"))
	if m := regexp.MustCompile(`(?m)^\s*ssl_ciphers\s+([^;]+);`).FindStringSubmatch(cfg); m == nil {
		t.Error("nginx.conf: no ssl_ciphers")
	} else {
		checkCiphers(t, "nginx.conf", m[1])
	}
	if m := regexp.MustCompile(`(?m)^\s*ssl_protocols\s+([^;]+);`).FindStringSubmatch(cfg); m == nil || strings.TrimSpace(m[1]) != "TLSv1.2 TLSv1.3" {
		t.Errorf("nginx.conf: ssl_protocols %v, want TLSv1.2 TLSv1.3", m)
	}
	ws := regexp.MustCompile(`(?s)location = /v1/ws \{(.*?)\n        \}`).FindStringSubmatch(cfg)
	if ws == nil {
		t.Fatal("nginx.conf: no location = /v1/ws")
	}
	for _, want := range []string{"proxy_set_header Upgrade", "proxy_set_header Connection", "proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for"} {
		if !strings.Contains(ws[1], want) {
			t.Errorf("nginx.conf /v1/ws: lacks %s", want)
		}
	}
	if m := regexp.MustCompile(`proxy_read_timeout\s+(\S+);`).FindStringSubmatch(ws[1]); m == nil {
		t.Error("nginx.conf /v1/ws: no proxy_read_timeout")
	} else if d := dur(t, "proxy_read_timeout", m[1]); d <= server.DefaultConfig().IdleTimeout {
		t.Errorf("nginx.conf /v1/ws: proxy_read_timeout %v not above Tern's idle timeout", d)
	}
	// A location that sets any proxy_set_header inherits none from above:
	// every proxying location must add the client address itself, as the
	// last X-Forwarded-For entry, which is the one Tern reads.
	for _, loc := range regexp.MustCompile(`(?s)location [^{]+\{(.*?)\n        \}`).FindAllStringSubmatch(cfg, -1) {
		if strings.Contains(loc[1], "proxy_pass") &&
			!regexp.MustCompile(`proxy_set_header\s+X-Forwarded-For\s+(\$proxy_add_x_forwarded_for|\$remote_addr);`).MatchString(loc[1]) {
			t.Errorf("nginx.conf: a proxying location that does not add the client address to X-Forwarded-For:\n%s", loc[0])
		}
	}
}

// ---------------------------------------------------------------------------
// haproxy -c and nginx -t

// selfSigned writes a throwaway certificate and key for localhost.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tern.crt"), filepath.Join(dir, "tern.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// uncommented drops #-comments (whole lines and line ends), as HAProxy and
// nginx read them, so that checks see directives only.
func uncommented(cfg string) string {
	return regexp.MustCompile(`(?m)(^|\s)#.*$`).ReplaceAllString(cfg, "")
}

// replaceAll replaces old by new in s and fails if old is not there, so that
// a configuration cannot drift away from what the test substitutes.
func replaceAll(t *testing.T, what, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%s no longer contains %q; update the test", what, old)
	}
	return strings.ReplaceAll(s, old, new)
}

// findTool looks a binary up in PATH and then where Debian installs
// daemons (/usr/sbin is not in every user's PATH).
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func TestHAProxyCheck(t *testing.T) {
	bin, err := findTool("haproxy")
	if err != nil {
		testenv.Unavailable(t, "haproxy is not installed (apt-get install haproxy); it checks deploy/haproxy/haproxy.cfg")
	}
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	// HAProxy wants the chain and the key in one PEM.
	pemFile := filepath.Join(dir, "tern.pem")
	if err := os.WriteFile(pemFile, []byte(readFile(t, certFile)+readFile(t, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := replaceAll(t, "haproxy.cfg", readFile(t, "haproxy/haproxy.cfg"), haproxyCertPath, pemFile)
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-c", "-f", cfgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	// The node names resolve only inside Compose (init-addr none lets
	// HAProxy start without them); any other warning is a mistake.
	for _, line := range strings.Split(string(out), "\n") {
		if (strings.Contains(line, "[WARNING]") || strings.Contains(line, "[ALERT]")) &&
			!strings.Contains(line, "could not resolve address") {
			t.Errorf("haproxy -c: %s", line)
		}
	}
	t.Logf("haproxy -c:\n%s", out)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestNginxCheck(t *testing.T) {
	bin, err := findTool("nginx")
	if err != nil {
		testenv.Unavailable(t, "nginx is not installed (apt-get install nginx-light); it checks deploy/nginx/nginx.conf")
	}
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	for _, d := range []string{"logs", "temp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := readFile(t, "nginx/nginx.conf")
	cfg = replaceAll(t, "nginx.conf", cfg, nginxCertPath, certFile)
	cfg = replaceAll(t, "nginx.conf", cfg, nginxKeyPath, keyFile)
	cfg = replaceAll(t, "nginx.conf", cfg, "/var/log/nginx/", filepath.Join(dir, "logs")+"/")
	cfg = replaceAll(t, "nginx.conf", cfg, "/run/nginx.pid", filepath.Join(dir, "nginx.pid"))
	// nginx -t binds every listen address: move them to free loopback ports
	// (80 and 443 need root, and may be taken; IPv6 may be off).
	cfg = regexp.MustCompile(`(?m)^(\s*listen\s+)\S+?(\s|;)`).ReplaceAllStringFunc(cfg, func(m string) string {
		sub := regexp.MustCompile(`^(\s*listen\s+)\S+?(\s|;)$`).FindStringSubmatch(m)
		return fmt.Sprintf("%s127.0.0.1:%d%s", sub[1], freePort(t), sub[2])
	})
	// Temporary files of the modules this nginx has, in the temp dir rather
	// than the packaged /var/lib/nginx, which a non-root user cannot create.
	v, _ := exec.Command(bin, "-V").CombinedOutput()
	temps := []string{"client_body_temp_path", "proxy_temp_path"}
	for _, mod := range []string{"fastcgi", "uwsgi", "scgi"} {
		if !bytes.Contains(v, []byte("--without-http_"+mod+"_module")) {
			temps = append(temps, mod+"_temp_path")
		}
	}
	var inject strings.Builder
	for _, d := range temps {
		fmt.Fprintf(&inject, "    %s %s;\n", d, filepath.Join(dir, "temp", strings.TrimSuffix(d, "_temp_path")))
	}
	cfg = replaceAll(t, "nginx.conf", cfg, "\nhttp {\n", "\nhttp {\n"+inject.String())
	cfgFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir+"/", "-c", cfgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	t.Logf("nginx -t:\n%s", out)
}

// ---------------------------------------------------------------------------
// Prometheus

// ternMetrics lists the metric names server/metrics.go registers.
func ternMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src := readFile(t, "../server/metrics.go")
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`Name:\s*"(tern_[a-z0-9_]+)"`).FindAllStringSubmatch(src, -1) {
		names[m[1]] = true
	}
	if len(names) < 5 {
		t.Fatalf("found only %d metrics in server/metrics.go", len(names))
	}
	return names
}

func TestAlertRules(t *testing.T) {
	ds := loadYAML(t)["prometheus/alerts.yaml"]
	if len(ds) != 1 {
		t.Fatalf("alerts.yaml: %d documents", len(ds))
	}
	known := ternMetrics(t)
	used := map[string]bool{}
	alerts := 0
	for _, g := range get(ds[0].m, "groups").([]any) {
		for _, r := range get(g, "rules").([]any) {
			name := str(get(r, "alert"))
			expr := str(get(r, "expr"))
			if name == "" || expr == "" {
				t.Errorf("group %v: a rule without alert or expr: %v", get(g, "name"), r)
				continue
			}
			alerts++
			if f := str(get(r, "for")); f != "" {
				dur(t, name+" for", f)
			}
			if s := str(get(r, "labels", "severity")); s != "page" && s != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", name, s)
			}
			if str(get(r, "annotations", "summary")) == "" {
				t.Errorf("%s: no summary", name)
			}
			if strings.Count(expr, "(") != strings.Count(expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %s", name, expr)
			}
			for _, m := range regexp.MustCompile(`\btern_[a-z0-9_]+`).FindAllString(expr, -1) {
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suf); ok && known[b] {
						base = b
					}
				}
				if !known[base] {
					t.Errorf("%s uses %s, which server/metrics.go does not export", name, m)
				}
				used[base] = true
			}
		}
	}
	for _, m := range []string{"tern_connections", "tern_send_seconds", "tern_store_seconds", "tern_routed_total",
		"tern_push_total", "tern_slow_consumers_total", "tern_http_requests_total"} {
		if !used[m] {
			t.Errorf("no alert on %s", m)
		}
	}
	t.Logf("%d alerts", alerts)

	// promtool, when installed, checks the PromQL itself.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yaml").CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: PromQL syntax not checked (optional)")
	}
}

// ---------------------------------------------------------------------------
// systemd

func TestSystemdUnit(t *testing.T) {
	unit := map[string][]string{}
	section := ""
	for _, line := range strings.Split(readFile(t, "systemd/tern.service"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("tern.service: %q is not key=value", line)
			continue
		}
		unit[section+"."+k] = append(unit[section+"."+k], v)
	}
	one := func(k string) string {
		if len(unit[k]) == 0 {
			t.Errorf("tern.service: no %s", k)
			return ""
		}
		return unit[k][len(unit[k])-1]
	}
	if !strings.HasPrefix(one("Service.ExecStart"), "/usr/local/bin/tern serve") {
		t.Errorf("ExecStart %q", one("Service.ExecStart"))
	}
	if u := one("Service.User"); u == "" || u == "root" {
		t.Errorf("User %q: run as an unprivileged user", u)
	}
	if n, err := strconv.Atoi(one("Service.LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE %q: one descriptor per socket needs far more", one("Service.LimitNOFILE"))
	}
	for k, want := range map[string]string{"Service.NoNewPrivileges": "yes", "Service.ProtectSystem": "strict",
		"Service.ProtectHome": "yes", "Service.PrivateTmp": "yes", "Service.Restart": "on-failure"} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	// The stop timeout covers the drain of the example settings.
	env := readFile(t, "systemd/tern.env.example")
	var names []string
	vals := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#?(TERN_[A-Z0-9_]+)=(.*)$`).FindAllStringSubmatch(env, -1) {
		names = append(names, m[1])
		if !strings.HasPrefix(m[0], "#") {
			vals[m[1]] = m[2]
		}
	}
	checkEnvNames(t, "systemd/tern.env.example", names)
	drain := dur(t, "TERN_DRAIN_DELAY", vals["TERN_DRAIN_DELAY"])
	grace := dur(t, "TERN_SHUTDOWN_GRACE", vals["TERN_SHUTDOWN_GRACE"])
	if stop := dur(t, "TimeoutStopSec", one("Service.TimeoutStopSec")); stop <= drain+grace {
		t.Errorf("TimeoutStopSec %v not above drain %v + grace %v", stop, drain, grace)
	}
}

// ---------------------------------------------------------------------------
// Documentation kept in step

func TestOperationsDocListsIndexes(t *testing.T) {
	doc := readFile(t, "../docs/operations.md")
	for _, ix := range mongo.Indexes() {
		var keys []string
		for _, k := range ix.Keys {
			keys = append(keys, k+": 1")
		}
		want := "{" + strings.Join(keys, ", ") + "}"
		if !strings.Contains(doc, want) || !strings.Contains(doc, "`"+ix.Collection+"`") {
			t.Errorf("docs/operations.md does not list the index %s on %s", want, ix.Collection)
		}
	}
	for _, f := range []string{"../docs/deploy.md"} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
}
