"""Once-for-All's released MobileNetV3 supernets, loaded into hwnas's ``OFASupernet`` as they are.

The mapping is written from the published state-dict layout of Once-for-All's ``OFAMobileNetV3``
(names and shapes, learned by reading its source; no code of it is used):

=====================================================  =============================================
Once-for-All                                           hwnas ``OFASupernet``
=====================================================  =============================================
``first_conv.{conv.weight, bn.*}``                     ``stem.{conv.weight, bn.*}``
``blocks.0.conv.depth_conv.{conv.weight, bn.*}``       ``blocks.0.depthwise.{conv.weight, bn.*}``
``blocks.0.conv.point_linear.{conv.weight, bn.*}``     ``blocks.0.project.{conv.weight, bn.*}``
``blocks.i.conv.inverted_bottleneck.conv.conv.weight`` ``blocks.i.expand.conv.weight``
``blocks.i.conv.inverted_bottleneck.bn.bn.*``          ``blocks.i.expand.bn.*``
``blocks.i.conv.depth_conv.conv.conv.weight``          ``blocks.i.depthwise.conv.weight``
``blocks.i.conv.depth_conv.conv.{7to5,5to3}_matrix``   ``blocks.i.kernel_transform.{7to5,5to3}`` (T)
``blocks.i.conv.depth_conv.bn.bn.*``                   ``blocks.i.depthwise.bn.*``
``blocks.i.conv.depth_conv.se.fc.{reduce,expand}.*``   ``blocks.i.se.{reduce,expand}.*``
``blocks.i.conv.point_linear.conv.conv.weight``        ``blocks.i.project.conv.weight``
``blocks.i.conv.point_linear.bn.bn.*``                 ``blocks.i.project.bn.*``
``final_expand_layer.{conv.weight, bn.*}``             ``final_expand.{conv.weight, bn.*}``
``feature_mix_layer.conv.weight``                      ``feature_mix.conv.weight``
``classifier.linear.{weight, bias}``                   ``classifier.{weight, bias}``
=====================================================  =============================================

``bn.*`` is weight, bias, running_mean, running_var and num_batches_tracked. Released files name
the block's layer ``mobile_inverted_conv`` instead of ``conv`` and may drop the dynamic wrappers'
inner level (``.bn.`` for ``.bn.bn.``); both spellings are accepted, as Once-for-All's own loader
accepts them. (T): Once-for-All applies a kernel-transform matrix M as ``F.linear(x, M)`` = x Mᵀ,
hwnas as x M, so the matrix is transposed on the way in and out. Every other tensor is copied
unchanged: both lay out elastic widths as leading slices and smaller kernels as centre crops.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import torch

from search_spaces import get_space
from search_spaces.errors import UserError

FORMAT = "ofa"
BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# Released supernets: name -> hwnas space. Official location first, then the authors' mirror.
RELEASED = {"ofa_mbv3_d234_e346_k357_w1.0": "ofa-w1.0", "ofa_mbv3_d234_e346_k357_w1.2": "ofa"}
RELEASE_URLS = ("https://hanlab.mit.edu/files/OnceForAll/ofa_nets/{name}",
                "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/{name}")
# SHA-256 of each released file. None: not recorded, because hwnas was built without access to the
# release, and a hash pinned from an unverified first download would certify whatever that download
# was. Until the project records them, the user supplies the hash (ofa:NAME@SHA256 or the
# environment variable below) after checking the file themselves; nothing is fetched unchecked.
RELEASED_SHA256: dict[str, str | None] = {name: None for name in RELEASED}
SHA256_ENV = "HWNAS_OFA_SHA256"
URL_ENV = "HWNAS_OFA_URL"


def _bn_pairs(ofa_prefix: str, hw_prefix: str) -> list[tuple[str, str, bool]]:
    return [(f"{ofa_prefix}.{f}", f"{hw_prefix}.{f}", False) for f in BN_FIELDS]


def key_map(net) -> list[tuple[str, str, bool]]:
    """(Once-for-All key, hwnas key, transpose) for every tensor of the supernet ``net``."""
    pairs = [("first_conv.conv.weight", "stem.conv.weight", False), *_bn_pairs("first_conv.bn", "stem.bn")]
    for i, layer in enumerate(net.blocks):
        o, h = f"blocks.{i}.conv", f"blocks.{i}"
        dyn = layer.expand is not None  # block 0 is a static MBConvLayer (no wrappers, no expansion)
        w = ".conv" if dyn else ""
        b = ".bn" if dyn else ""
        if dyn:
            pairs.append((f"{o}.inverted_bottleneck.conv.conv.weight", f"{h}.expand.conv.weight", False))
            pairs += _bn_pairs(f"{o}.inverted_bottleneck.bn.bn", f"{h}.expand.bn")
        pairs.append((f"{o}.depth_conv.conv{w}.weight", f"{h}.depthwise.conv.weight", False))
        for name in layer.kernel_transform:
            pairs.append((f"{o}.depth_conv.conv.{name}_matrix", f"{h}.kernel_transform.{name}", True))
        pairs += _bn_pairs(f"{o}.depth_conv.bn{b}", f"{h}.depthwise.bn")
        if layer.se is not None:
            for part in ("reduce", "expand"):
                for f in ("weight", "bias"):
                    pairs.append((f"{o}.depth_conv.se.fc.{part}.{f}", f"{h}.se.{part}.{f}", False))
        pairs.append((f"{o}.point_linear.conv{w}.weight", f"{h}.project.conv.weight", False))
        pairs += _bn_pairs(f"{o}.point_linear.bn{b}", f"{h}.project.bn")
    pairs += [("final_expand_layer.conv.weight", "final_expand.conv.weight", False),
              *_bn_pairs("final_expand_layer.bn", "final_expand.bn"),
              ("feature_mix_layer.conv.weight", "feature_mix.conv.weight", False),
              ("classifier.linear.weight", "classifier.weight", False),
              ("classifier.linear.bias", "classifier.bias", False)]
    return pairs


def _spellings(key: str) -> list[str]:
    """The spellings Once-for-All's loader treats as ``key``: old block name, wrapper level or not."""
    out = [key]
    if ".conv." in key and key.startswith("blocks."):
        out.append(re.sub(r"^(blocks\.\d+)\.conv\.", r"\1.mobile_inverted_conv.", key))
    for k in list(out):
        for a, b in ((".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"),
                     (".linear.linear.", ".linear.")):
            if a in k:
                out.append(k.replace(a, b))
    return out


def ofa_to_hwnas(state: dict, net, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The hwnas state dict of a Once-for-All state dict; every tensor placed, none left over."""
    own = net.state_dict()
    left = dict(state)
    out: dict[str, torch.Tensor] = {}
    missing = []
    for okey, hkey, transpose in key_map(net):
        found = next((k for k in _spellings(okey) if k in left), None)
        if found is None:
            missing.append(okey)
            continue
        t = left.pop(found)
        if not isinstance(t, torch.Tensor):
            raise UserError(f"{source}: {found} is not a tensor")
        t = t.t() if transpose else t
        if tuple(t.shape) != tuple(own[hkey].shape):
            raise UserError(f"{source}: {found} has shape {tuple(t.shape)}, space {net.space.name!r} needs "
                            f"{tuple(own[hkey].shape)}; is it a supernet of another width or class count?")
        out[hkey] = t.to(own[hkey].dtype).clone()
    if missing:
        raise UserError(f"{source} lacks {len(missing)} Once-for-All tensor(s) of space {net.space.name!r}, "
                        f"first {missing[0]}; is it a Once-for-All MobileNetV3 supernet?")
    if left:
        raise UserError(f"{source} holds {len(left)} tensor(s) space {net.space.name!r} has no place for, "
                        f"first {sorted(left)[0]}")
    return out


def hwnas_to_ofa(net) -> dict[str, torch.Tensor]:
    """A supernet's weights in Once-for-All's naming (``blocks.i.conv.*``, with the wrapper level)."""
    own = net.state_dict()
    return {o: (own[h].t() if tr else own[h]).clone() for o, h, tr in key_map(net)}


def _read_state(path: Path) -> dict:
    where = f"Once-for-All checkpoint {str(path)!r}"
    if not path.is_file():
        raise UserError(f"{where} does not exist or is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle: the same to a user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{where} is not readable (corrupted, truncated or not a torch file): {first}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise UserError(f"{where} holds no state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def is_ofa_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a Once-for-All supernet (its stem is named ``first_conv``)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not readable: not ours to judge here; the hwnas loader reports it
        return False
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return isinstance(obj, dict) and any(isinstance(k, str) and k.removeprefix("module.").startswith("first_conv.")
                                         for k in obj)


def load_ofa_file(path: str | os.PathLike, space: str | None = "ofa"):
    """An ``OFASupernet`` of ``space`` holding the weights of a Once-for-All supernet file."""
    p = Path(path)
    state = _read_state(p)
    sp = get_space(space or _guess_space(state, p))
    from search_spaces.ofa.space import OFASpace

    if not isinstance(sp, OFASpace):
        raise UserError(f"space {sp.name!r} has no Once-for-All supernet; accepted: ofa, ofa-w1.0")
    cls_w = state.get("classifier.linear.weight", state.get("classifier.weight"))
    if isinstance(cls_w, torch.Tensor) and cls_w.ndim == 2 and cls_w.shape[0] != sp.n_classes:
        sp = sp.variant(n_classes=int(cls_w.shape[0]))
    net = sp.supernet()
    net.load_state_dict(ofa_to_hwnas(state, net, f"Once-for-All checkpoint {str(p)!r}"))
    return net


def _guess_space(state: dict, path: Path) -> str:
    w = state.get("first_conv.conv.weight")
    for name in ("ofa", "ofa-w1.0"):
        if isinstance(w, torch.Tensor) and w.shape[0] == get_space(name).widths.stem:
            return name
    raise UserError(f"{str(path)!r}: cannot tell its width; pass --space ofa or --space ofa-w1.0")


def import_weights(src: str, out: str | os.PathLike, space: str | None = None, fmt: str | None = None) -> dict:
    """Convert a supernet file (Once-for-All's, or ``ofa:NAME``) into an hwnas checkpoint at ``out``."""
    from nas.checkpoints import save_supernet

    out = Path(out)
    if out.exists():
        raise UserError(f"--out {str(out)!r} exists; choose a new file (earlier results are never overwritten)")
    if src.startswith("ofa:"):
        net, path = load_released(src[4:], space)
    else:
        path = Path(src)
        if fmt not in (None, FORMAT):
            raise UserError(f"unknown weights format {fmt!r}; accepted: {FORMAT}")
        if fmt is None and not is_ofa_file(path):
            _read_state(path)  # a readable file that is not Once-for-All's: say what was expected
            raise UserError(f"{src!r} is not a Once-for-All supernet (no first_conv.* tensors); accepted: --format ofa")
        net = load_ofa_file(path, space)
    save_supernet(net, out)
    return {"source": str(src), "file": str(path), "space": net.space.name, "n_classes": net.space.n_classes,
            "n_tensors": len(net.state_dict()), "out": str(out)}


# ---- released files ------------------------------------------------------------------------
def released_sha256(name: str, given: str | None = None) -> str:
    sha = (given or os.environ.get(SHA256_ENV, "").strip() or RELEASED_SHA256.get(name) or "").lower()
    if not sha:
        raise UserError(f"hwnas records no SHA-256 for {name} yet (it was built without access to the release); "
                        f"download {RELEASE_URLS[0].format(name=name)}, check it, then use ofa:{name}@SHA256 "
                        f"(or set {SHA256_ENV}), or convert the file with `nas import-weights --format ofa FILE`")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise UserError(f"SHA-256 {sha!r} for {name} is not 64 hex digits")
    return sha


def fetch_released(spec: str) -> Path:
    """A verified local copy of ``NAME[@SHA256]`` from Once-for-All's release, in the user cache."""
    name, _, given = spec.partition("@")
    if name not in RELEASED:
        raise UserError(f"unknown Once-for-All supernet {name!r}; accepted: {', '.join(RELEASED)}")
    sha = released_sha256(name, given or None)
    try:
        from nas.fetch import Remote, fetch  # the shared fetcher: cache, SHA-256, atomic, offline error
    except ImportError:
        raise UserError(f"this hwnas has no downloader (nas.fetch); download {RELEASE_URLS[0].format(name=name)} "
                        f"and convert it with `nas import-weights --format ofa FILE --out ckpt.pt`") from None
    remote = Remote(filename=name, urls=tuple(u.format(name=name) for u in RELEASE_URLS), sha256=sha,
                    what=f"Once-for-All's released supernet {name}", url_env=URL_ENV)
    return fetch(remote)


def load_released(spec: str, space: str | None = None):
    """(supernet, local file) for ``ofa:NAME[@SHA256]``; ``space`` must be the one NAME belongs to."""
    name = spec.partition("@")[0]
    if name in RELEASED and space is not None and space != RELEASED[name]:
        raise UserError(f"{name} is a supernet of space {RELEASED[name]!r}, not {space!r}")
    path = fetch_released(spec)
    return load_ofa_file(path, RELEASED[name]), path


def save_ofa_state(net, path: str | os.PathLike) -> Path:
    """Write a supernet in Once-for-All's file layout ({"state_dict": ...}) atomically (tests, export)."""
    from nas.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"state_dict": hwnas_to_ofa(net)}, buf)
    return atomic_write_bytes(path, buf.getvalue())
