"""Released files fetched once: official URL, SHA-256 check, user cache, atomic write, offline error.

A ``Remote`` names a file another project publishes (Once-for-All's accuracy predictor, later its
supernet weights): where it is released, the SHA-256 hwnas records for it and what it is.
``fetch(remote)`` returns a path to a verified copy in the user cache (``~/.hwnas/cache``, or
``$HWNAS_CACHE_DIR``): a cached copy whose hash matches is used with no network; otherwise each
URL is tried in turn with a timeout, the bytes are streamed to a temporary file beside the
target, hashed, and moved into place only when the hash matches, so a cut or corrupted download
never leaves a file that looks cached. With ``HWNAS_OFFLINE=1`` (or when every URL fails) the
error is one line naming the file, its hash and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from search_spaces.errors import UserError

CACHE_ENV = "HWNAS_CACHE_DIR"
OFFLINE_ENV = "HWNAS_OFFLINE"
DEFAULT_TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Remote:
    """A released file: cache name, official URLs (tried in order), SHA-256 and a description.

    ``url_env`` names an environment variable that, when set, replaces the URLs (a mirror, or a
    server on 127.0.0.1 in tests).
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str
    what: str
    url_env: str | None = None

    def resolved_urls(self) -> tuple[str, ...]:
        override = os.environ.get(self.url_env, "").strip() if self.url_env else ""
        return (override,) if override else self.urls


def cache_dir() -> Path:
    """The user cache: ``$HWNAS_CACHE_DIR`` or ``~/.hwnas/cache``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".hwnas" / "cache"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_path(remote: Remote) -> Path:
    return cache_dir() / remote.filename


def _where_to_put(remote: Remote) -> str:
    return (f"put {remote.filename} (SHA-256 {remote.sha256[:12]}..., from {remote.urls[0]}) "
            f"in {cache_dir()} (set {CACHE_ENV} to use another folder)")


def fetch(remote: Remote, timeout_s: float = DEFAULT_TIMEOUT_S,
          log: Callable[[str], None] | None = None) -> Path:
    """A verified local copy of ``remote``: the cached one, or one downloaded now."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    target = cached_path(remote)
    if target.is_file():
        if sha256_of(target) == remote.sha256:
            return target
        log(f"cached {target} does not match its recorded SHA-256; fetching it again")
    if offline():
        raise UserError(f"{remote.what} is not cached and {OFFLINE_ENV} is set: {_where_to_put(remote)}")
    reasons = []
    for url in remote.resolved_urls():
        try:
            _download(url, target, remote.sha256, timeout_s, log)
            return target
        except _FetchFailed as e:
            reasons.append(f"{url}: {e}")
    raise UserError(f"could not fetch {remote.what} ({'; '.join(reasons)}); offline? {_where_to_put(remote)}")


class _FetchFailed(Exception):
    pass


def _download(url: str, target: Path, sha256: str, timeout_s: float, log) -> None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("https", "http"):
        raise _FetchFailed(f"unsupported URL scheme {parsed.scheme!r}")
    # A proxy set for the outside world must not intercept a server on this machine.
    handlers = [urllib.request.ProxyHandler({})] if parsed.hostname in _LOOPBACK else []
    opener = urllib.request.build_opener(*handlers)
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {url} -> {target}")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, opener.open(url, timeout=timeout_s) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as e:
            raise _FetchFailed(f"HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", None) or e
            raise _FetchFailed(f"{type(e).__name__}: {reason}") from None
        got = h.hexdigest()
        if got != sha256:
            raise _FetchFailed(f"downloaded file has SHA-256 {got[:12]}..., not the recorded "
                               f"{sha256[:12]}...; rejected, nothing cached")
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
