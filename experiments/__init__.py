"""Experiments and benchmarks: run from the repository root as modules, e.g. ``python -m experiments.bench.search_vs_ofa``."""
