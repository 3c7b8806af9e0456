"""Benchmarks and evaluations: each prints a table and writes plots to benchmarks/results/."""
