"""The device registry: shipped profiles plus the user's, found by name or alias.

Shipped profiles live in the ``device_profiles`` package folder. User profiles (what
``nas import-table`` and the profiler write) live in ``~/.hwnas/device_profiles``, or in the
folder named by the ``HWNAS_DEVICE_DIR`` environment variable. A user profile with the name of a
shipped one replaces it, so a user can extend or re-measure a shipped device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from search_spaces.errors import UserError
from search_spaces.fileio import MAX_NESTING, yaml_too_deep, atomic_write_bytes

from .profile import DeviceProfile

ENV_DEVICE_DIR = "HWNAS_DEVICE_DIR"
DEFAULT_USER_DIR = Path("~/.hwnas/device_profiles")

# libyaml's loader when present: profiles hold thousands of entries and pure-Python parsing is slow.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class RegisteredProfile:
    profile: DeviceProfile
    path: Path
    origin: str  # "shipped" or "user"


def shipped_dir() -> Path:
    from device_profiles import PROFILE_DIR

    return PROFILE_DIR


def user_dir() -> Path:
    """Where user profiles live: $HWNAS_DEVICE_DIR, else ~/.hwnas/device_profiles."""
    env = os.environ.get(ENV_DEVICE_DIR)
    return Path(env).expanduser() if env else DEFAULT_USER_DIR.expanduser()


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    msg = err["msg"].removeprefix("Value error, ")
    return f"field {field}: {msg}{more}"


_CACHE: dict[Path, tuple[int, int, DeviceProfile]] = {}


def load_profile(path: str | os.PathLike) -> DeviceProfile:
    """A profile read from YAML; a UserError names the file and the offending field."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise UserError(f"device profile {str(path)!r} does not exist") from None
    cached = _CACHE.get(path)
    if cached and cached[:2] == (st.st_mtime_ns, st.st_size):
        return cached[2]
    try:
        text = path.read_text()
        if yaml_too_deep(text, _Loader):  # some libyaml builds crash (segfault) on such nesting
            raise UserError(f"device profile {str(path)!r} nests more than {MAX_NESTING} levels deep")
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise UserError(f"device profile {str(path)!r} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"device profile {str(path)!r} cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"device profile {str(path)!r} must be a YAML mapping with at least name and source")
    try:
        profile = DeviceProfile.model_validate(data)
    except ValidationError as e:
        raise UserError(f"device profile {str(path)!r}: {_first_error(e)}") from None
    if profile.name != path.stem:
        raise UserError(f"device profile {str(path)!r}: field name: {profile.name!r} must match the file name "
                        f"({path.stem!r})")
    _CACHE[path] = (st.st_mtime_ns, st.st_size, profile)
    return profile


def profile_yaml(profile: DeviceProfile) -> str:
    data = profile.model_dump(mode="python", exclude_none=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def save_profile(profile: DeviceProfile, directory: str | os.PathLike | None = None) -> Path:
    """Write ``<dir>/<name>.yaml`` atomically (default: the user directory); returns the path."""
    directory = Path(directory).expanduser() if directory is not None else user_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{profile.name}.yaml"
    # Temp file + rename: a reader (another search) never sees half a profile.
    return atomic_write_bytes(path, profile_yaml(profile).encode())


def _yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("."))


def list_profiles() -> list[RegisteredProfile]:
    """Every profile, sorted by name; a user profile replaces a shipped one of the same name."""
    found: dict[str, RegisteredProfile] = {}
    for origin, directory in (("shipped", shipped_dir()), ("user", user_dir())):
        for path in _yaml_files(directory):
            prof = load_profile(path)
            found[prof.name] = RegisteredProfile(prof, path, origin)
    owners: dict[str, str] = {name: name for name in found}
    for reg in found.values():
        for alias in reg.profile.aliases:
            other = owners.setdefault(alias, reg.profile.name)
            if other != reg.profile.name:
                raise UserError(f"device profile {str(reg.path)!r}: field aliases: {alias!r} already names "
                                f"device {other!r}")
    return [found[n] for n in sorted(found)]


def describe_known(profiles: list[RegisteredProfile]) -> str:
    if not profiles:
        return "none"
    parts = []
    for reg in profiles:
        al = reg.profile.aliases
        parts.append(reg.profile.name + (f" (aliases: {', '.join(al)})" if al else ""))
    return ", ".join(parts)


def find_profile(name: str) -> RegisteredProfile:
    """The registered profile of that name or alias; a UserError lists the known ones."""
    profiles = list_profiles()
    key = name.strip().lower()
    for reg in profiles:
        if key == reg.profile.name or key in reg.profile.aliases:
            return reg
    raise UserError(f"unknown device {name!r}; known: {describe_known(profiles)} "
                    f"(user profiles are read from {user_dir()}, set {ENV_DEVICE_DIR} to change)")


def get_profile(name: str | DeviceProfile) -> DeviceProfile:
    if isinstance(name, DeviceProfile):
        return name
    return find_profile(name).profile
