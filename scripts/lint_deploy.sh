#!/usr/bin/env bash
# Lints deploy/: yamllint (strict) on the Kubernetes manifests, kubernetes-validate --strict (the
# Kubernetes OpenAPI schemas that the PyPI package ships, no network; unknown fields are errors) on
# every resource, sh -n on the container's entry point, and the deployment's own rules: probes on
# routes kompress serves, and a termination grace period longer than the preStop pause plus
# --grace-ms. The tools come from PyPI into a venv on first use (pinned; $LINT_VENV, default
# target/lint-venv). The Docker image build itself is not checked here (no Docker on these machines).
#
# Usage: scripts/lint_deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LINT_VENV:-target/lint-venv}
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/yamllint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate==1.37.0 yamllint==1.38.0
fi
manifests=(deploy/k8s/*.yaml)
"$venv/bin/yamllint" --strict -c deploy/k8s/.yamllint "${manifests[@]}"
"$venv/bin/kubernetes-validate" --strict --quiet "${manifests[@]}"
sh -n deploy/entrypoint.sh
"$venv/bin/python" - "${manifests[@]}" <<'PY'
import re, sys, yaml

served = {"/healthz", "/readyz", "/ping", "/v2/health/live", "/v2/health/ready"}
failures = []
deployments = 0
for name in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(name)):
        if not doc or doc.get("kind") != "Deployment":
            continue
        deployments += 1
        pod = doc["spec"]["template"]["spec"]
        grace_s = pod.get("terminationGracePeriodSeconds", 30)
        for c in pod["containers"]:
            where = f"{name}: container {c['name']}"
            for probe in ("readinessProbe", "livenessProbe"):
                path = c.get(probe, {}).get("httpGet", {}).get("path")
                if path not in served:
                    failures.append(f"{where}: {probe} on {path!r}, not a health route ({sorted(served)})")
            flags = " ".join(c.get("args", []) + c.get("command", []))
            m = re.search(r"--grace-ms[= ](\d+)", flags)
            grace_ms = int(m.group(1)) if m else 10_000
            pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            pause_s = int(pre[-1]) if pre and pre[0].endswith("sleep") else 0
            if grace_s * 1000 <= pause_s * 1000 + grace_ms:
                failures.append(
                    f"{where}: terminationGracePeriodSeconds {grace_s} s is not longer than the "
                    f"preStop pause ({pause_s} s) plus --grace-ms {grace_ms}"
                )
if deployments == 0:
    failures.append("no Deployment among the manifests")
for f in failures:
    print(f"lint_deploy: {f}", file=sys.stderr)
sys.exit(1 if failures else 0)
PY
echo "lint_deploy: ${#manifests[@]} manifests pass yamllint, kubernetes-validate --strict (Kubernetes 1.37 schemas) and the deployment rules"
