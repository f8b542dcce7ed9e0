"""Latency: device profiles, lookup tables, the vectorised predictor, profilers and importers."""
