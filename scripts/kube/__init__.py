"""A real Kubernetes control plane on loopback, and the tools to prove the chart against it."""
