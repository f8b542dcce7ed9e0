"""Benchmarks that print side-by-side ratios (``python -m experiments.bench.NAME --help``)."""
