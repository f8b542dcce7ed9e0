"""ONNX Runtime imported with its telemetry off (hwnas never asks for it).

ONNX Runtime's Linux and Windows wheels carry Microsoft's 1DS telemetry: at *import* the library
writes a device id and queues an event under ``$XDG_CACHE_HOME`` (else ``~/.cache``)
``/Microsoft/DeveloperTools/.onnxruntime/``. The environment variable ``ORT_DISABLE_TELEMETRY=1``,
when set before the first import, stops that; ``disable_telemetry_events()`` then turns off the
session events for the rest of the process. Every ONNX Runtime import in hwnas goes through
``import_onnxruntime()``. A user who wants telemetry sets ``ORT_DISABLE_TELEMETRY=0`` themselves.
"""

from __future__ import annotations

import os

ENV = "ORT_DISABLE_TELEMETRY"


def quiet_env() -> None:
    """Set ``ORT_DISABLE_TELEMETRY=1`` unless the user chose a value (inherited by worker processes)."""
    os.environ.setdefault(ENV, "1")


def import_onnxruntime():
    """The ``onnxruntime`` module, with telemetry off as far as this process still allows.

    If something imported onnxruntime before hwnas (without the variable), its device id is already
    written; only the session events can still be turned off.
    """
    quiet_env()
    import onnxruntime

    if os.environ.get(ENV) != "0" and hasattr(onnxruntime, "disable_telemetry_events"):
        # Older/other builds (e.g. macOS wheels, built without telemetry) lack the call.
        onnxruntime.disable_telemetry_events()
    return onnxruntime

