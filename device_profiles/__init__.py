"""Device profiles shipped with hwnas: one YAML per device (data only)."""

from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent
