#!/usr/bin/env bash
# From nothing to a minikube cluster with a working ingress: one node with room for three
# Cassandra nodes (the chart's minikube values prefer, not require, separate machines), the
# ingress addon, and a wait until its controller answers. Afterwards: skaffold run -p minikube
set -euo pipefail
minikube status >/dev/null 2>&1 || minikube start --cpus=4 --memory=10g --addons=ingress
minikube addons enable ingress
kubectl config use-context minikube
kubectl -n ingress-nginx wait --for=condition=Ready pod -l app.kubernetes.io/component=controller --timeout=300s
echo "minikube is ready, with ingress on http://$(minikube ip)/"
