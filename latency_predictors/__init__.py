"""Latency: device profiles, lookup tables, the vectorised predictor, profilers and importers."""

from .predictor import LatencyPredictor, LayerLatency, compile_table, predict_latency_ms
from .profile import (Calibration, DeviceProfile, FitReport, Hardware, HostFingerprint, LayerTable, Runtime,
                      Source, SpaceTable, ValidationFigures, host_fingerprint)
from .registry import find_profile, get_profile, list_profiles, load_profile, save_profile, user_dir
from .units import parse_latency_ms
from . import cell_ops  # noqa: F401  (registers the nasnet space's per-op blocks in operators' registry)

__all__ = ["LatencyPredictor", "LayerLatency", "compile_table", "predict_latency_ms", "Calibration",
           "DeviceProfile", "FitReport", "Hardware", "HostFingerprint", "LayerTable", "Runtime", "Source",
           "SpaceTable", "ValidationFigures", "host_fingerprint", "find_profile", "get_profile", "list_profiles",
           "load_profile", "save_profile", "user_dir", "parse_latency_ms"]
