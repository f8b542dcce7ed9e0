"""The device registry: shipped profiles plus the user's, found by name or alias.

Shipped profiles live in the ``device_profiles`` package folder. User profiles (what
``nas import-table`` and the profiler write) live in ``~/.hwnas/device_profiles``, or in the
folder named by the ``HWNAS_DEVICE_DIR`` environment variable. A user profile with the name of a
shipped one replaces it, so a user can extend or re-measure a shipped device.
"""

from __future__ import annotations

import os
import warnings
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


class BrokenProfileWarning(UserWarning):
    """A user profile could not be read (or clashes with another); it is skipped, the rest still work."""


@dataclass(frozen=True)
class BrokenProfile:
    """A profile file that was skipped, and why (one line)."""

    path: Path
    origin: str
    reason: str

    @property
    def name(self) -> str:
        return self.path.stem


_warned_broken: set[tuple[Path, str]] = set()


def _warn_broken(broken: BrokenProfile) -> None:
    # Once per file and reason per process: a search that loads the registry many times says it once.
    if (broken.path, broken.reason) not in _warned_broken:
        _warned_broken.add((broken.path, broken.reason))
        warnings.warn(f"skipping broken device profile {broken.name!r}: {broken.reason}",
                      BrokenProfileWarning, stacklevel=3)


def scan_profiles() -> tuple[list[RegisteredProfile], list[BrokenProfile]]:
    """Every readable profile (sorted by name) and every broken one, without raising.

    A user profile with a shipped profile's name replaces it. A profile that cannot be read, or
    whose name or alias another profile already holds, is broken: it is skipped and reported, so
    one bad file never blocks the other devices. Names and aliases are claimed shipped first, then
    user profiles in file-name order, so an earlier holder keeps its name.
    """
    found: dict[str, RegisteredProfile] = {}
    broken: list[BrokenProfile] = []
    for origin, directory in (("shipped", shipped_dir()), ("user", user_dir())):
        for path in _yaml_files(directory):
            try:
                prof = load_profile(path)
            except UserError as e:
                broken.append(BrokenProfile(path, origin, str(e)))
                continue
            found[prof.name] = RegisteredProfile(prof, path, origin)
    owners: dict[str, str] = {}
    ok: dict[str, RegisteredProfile] = {}
    # Shipped profiles (not replaced) claim their names first, then user profiles by file name.
    order = sorted(found.values(), key=lambda r: (r.origin != "shipped", r.path.name))
    for name in [r.profile.name for r in order]:
        owners.setdefault(name, name)
    for reg in order:
        clash = next((a for a in reg.profile.aliases if owners.get(a, reg.profile.name) != reg.profile.name), None)
        if clash is not None:
            broken.append(BrokenProfile(reg.path, reg.origin, f"device profile {str(reg.path)!r}: field aliases: "
                                                               f"{clash!r} already names device {owners[clash]!r}"))
            continue
        for alias in reg.profile.aliases:
            owners[alias] = reg.profile.name
        ok[reg.profile.name] = reg
    return [ok[n] for n in sorted(ok)], sorted(broken, key=lambda b: str(b.path))


def list_profiles() -> list[RegisteredProfile]:
    """Every usable profile, sorted by name; broken ones are skipped with a BrokenProfileWarning."""
    profiles, broken = scan_profiles()
    for b in broken:
        _warn_broken(b)
    return profiles


def taken_names(exclude: str | None = None) -> dict[str, str]:
    """Every name and alias in use, mapped to the device holding it (``exclude``: a device being rewritten)."""
    profiles, _ = scan_profiles()
    taken: dict[str, str] = {}
    for reg in profiles:
        if reg.profile.name == exclude:
            continue
        for n in (reg.profile.name, *reg.profile.aliases):
            taken.setdefault(n, reg.profile.name)
    return taken


def check_names_free(name: str, aliases=(), replaces: str | None = None) -> None:
    """UserError before anything is written when ``name`` or an alias already names another device.

    ``replaces``: the device this write updates (its own name and aliases are free to reuse); a new
    user profile may also take a shipped profile's name to replace it.
    """
    taken = taken_names(exclude=replaces or name)
    for n in (name, *aliases):
        key = str(n).strip().lower()
        owner = taken.get(key)
        if owner is not None and owner != name:
            what = "device name" if key == name else "alias"
            raise UserError(f"{what} {key!r} is already taken by device {owner!r}; choose another "
                            f"(see nas devices)")


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
    profiles, broken = scan_profiles()
    key = name.strip().lower()
    for b in broken:
        if key == b.name and not any(key == r.profile.name or key in r.profile.aliases for r in profiles):
            raise UserError(f"device {key!r} is broken and skipped: {b.reason}")
    for b in broken:
        _warn_broken(b)
    for reg in profiles:
        if key == reg.profile.name or key in reg.profile.aliases:
            return reg
    raise UserError(f"unknown device {name!r}; known: {describe_known(profiles)} "
                    f"(user profiles are read from {user_dir()}, set {ENV_DEVICE_DIR} to change)")


def get_profile(name: str | DeviceProfile) -> DeviceProfile:
    if isinstance(name, DeviceProfile):
        return name
    if not isinstance(name, str):
        raise UserError(f"a device must be a name or a DeviceProfile, got {type(name).__name__}")
    return find_profile(name).profile
