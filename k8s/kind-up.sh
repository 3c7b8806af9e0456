#!/usr/bin/env bash
# From nothing to a kind cluster with a working ingress: the cluster of kind-config.yaml, then
# ingress-nginx (kind's own manifest, pinned), then wait until the controller answers.
# Needs docker (or podman) and kind; afterwards: skaffold run -p kind
set -euo pipefail
cd "$(dirname "$0")"
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-controller-v1.12.1}"

kind get clusters 2>/dev/null | grep -qx digits || kind create cluster --config kind-config.yaml
kubectl config use-context kind-digits
kubectl apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml"
kubectl -n ingress-nginx wait --for=condition=Ready pod -l app.kubernetes.io/component=controller --timeout=300s
echo "kind cluster 'digits' is ready, with ingress on http://localhost/"
