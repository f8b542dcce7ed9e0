"""The ``nas calibrate`` job: fit a space's calibration on this host and store it where predictions read it.

The fit itself is ``calibration.fit_calibration``; this file decides where the result goes (the
profile when it was measured on this host, else this host's calibration cache,
``host_calibration.py``) and writes the report. Kept apart from ``calibration.py`` because the
host cache's automatic re-calibration also fits through ``calibration.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from search_spaces.fileio import atomic_write_bytes

from .calibration import fit_calibration
from .host_calibration import store_calibration
from .hostcheck import check_host
from .measure import check_writable_dir, resolve_profile, store_dir, store_profile


def calibrate_device(device, space, n: int = 50, seed: int = 0, plan=None, resolutions=None, out_dir=None,
                     progress: bool = True, report_dir=None, measure_probe=None) -> dict:
    """Measure n random whole networks, fit the space's calibration, and store it where predictions read it.

    The profile is the one ``nas predict`` uses (the user's copy over the shipped one; ``out_dir``:
    a folder holding ``<device>.yaml`` to use and update instead). Measured on this host, the
    calibration goes into the profile; measured on another host (fingerprint or speed probe), into
    this host's calibration cache (``host_calibration.py``), which predictions here then use.
    ``report_dir``: also write ``calibration-DEVICE-SPACE.json`` there.
    """
    prof = resolve_profile(device, out_dir)
    # Every output is checked before any network is measured (a minute of work).
    report = None
    if report_dir is not None:
        report = Path(report_dir).expanduser() / f"calibration-{prof.name}-{getattr(space, 'name', space)}.json"
        check_writable_dir(report.parent)
    check_writable_dir(store_dir(prof.name, out_dir))
    check = check_host(prof, probe=True, measure_probe=measure_probe)
    here = check is None or check.same
    cals, info = fit_calibration(prof, space, n=n, seed=seed, plan=plan, resolutions=resolutions, progress=progress)
    if here:
        prof = resolve_profile(device, out_dir)  # as on disk now: on-demand measuring wrote tables meanwhile
        tables = dict(prof.tables)
        for name, cal in cals.items():
            tables[name] = tables[name].model_copy(update={"calibration": cal})
        info["path"] = str(store_profile(prof.model_copy(update={"tables": tables}), out_dir))
        info["stored"] = "profile"
    else:
        info["path"] = str(store_calibration(prof, cals, info))
        info["stored"] = "host calibration cache"
        info["host"] = {"measured_on": check.measured_on, "this_host": check.here,
                        "differences": check.differences, "probe_ratio": check.probe_ratio}
    if report is not None:
        info["report"] = str(report)
        atomic_write_bytes(report, (json.dumps(info, indent=1, default=str) + "\n").encode())
    return info
