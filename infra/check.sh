#!/usr/bin/env bash
# Offline checks of the deployment: Terraform, Kubernetes manifests and
# Dockerfiles, with no provider or image downloads (this machine, like CI,
# reaches only package registries). `scripts/test.sh` runs it; it can also run
# alone: `bash infra/check.sh`.
#
# Tools come from PyPI into a venv of their own (pinned below): python-hcl2
# parses the HCL for the invariant tests, checkov scans with --skip-download,
# kubernetes-validate checks manifests against the Kubernetes schemas it
# bundles, and pytest runs infra/tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${LONGHAUL_CACHE_DIR:-$HOME/.cache/longhaul}/infra-venv"
requirements="$here/tests/requirements.txt"

if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    echo "installing the infrastructure checkers into $venv"
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

export PATH="$venv/bin:$PATH"
cd "$here"
echo "==> pytest infra/tests"
python -m pytest -q -p no:cacheprovider tests
if [[ -d terraform ]]; then
    echo "==> checkov (Terraform, offline)"
    checkov --quiet --compact --skip-download --framework terraform -d terraform
fi
if [[ -d k8s ]]; then
    echo "==> checkov (Kubernetes, offline)"
    checkov --quiet --compact --skip-download --framework kubernetes -d k8s
fi
if [[ -d ../docker ]]; then
    echo "==> checkov (Dockerfiles, offline)"
    checkov --quiet --compact --skip-download --framework dockerfile -d ../docker
fi
