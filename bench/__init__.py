"""Benchmarks: measured side by side in one run, results committed under bench/results/."""
