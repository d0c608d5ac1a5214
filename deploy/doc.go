// Package deploy holds what runs Tern outside a developer's machine: the
// container image (Dockerfile), a three-node cluster in Docker Compose
// (compose/), Kubernetes manifests (k8s/), load balancer configurations
// (haproxy/, nginx/), a systemd unit (systemd/) and Prometheus alert rules
// (prometheus/). docs/deploy.md walks through them; docs/operations.md
// explains running the cluster.
//
// The package has no Go API. Its tests keep the files honest: every YAML
// file parses, the facts other parts depend on hold (probes on /readyz and
// /healthz, the disruption budget, grace periods longer than Tern's
// shutdown), the alert rules name metrics the server really exports, and,
// where the binaries are installed, `haproxy -c` and `nginx -t` accept the
// load balancer configurations.
package deploy
