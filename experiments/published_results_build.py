"""Derive MACs and params of Once-for-All's released nets and rewrite their rows of the prior's data.

The published prior (``nas/accuracy/published_results.yaml``) records facts. For the papers'
nets they are the papers' own figures, written by hand with citations. For Once-for-All's
released specialised nets the top-1 comes from each release folder's name, and MACs / params are
computed here with our own cost model:

- MobileNetV3 nets (w1.2 and w1.0): converted with ``space.from_net_config`` and priced by
  ``space.macs`` / ``space.params`` (the same numbers the prior sees for archs of those spaces);
- ProxylessNAS-backbone nets (``ProxylessNASNets``) and ProxylessNAS's own searched nets: priced
  by ``layer_list_costs`` below from the layer list (convs and the classifier, biases not counted
  in MACs, BN counted as 2 params per channel, as in ``search_spaces.ofa.space.block_macs_params``).

Usage (rewrites only the rows whose ``source`` is ``derived``; the hand-written rows are kept):

    .venv/bin/python experiments/published_results_build.py ../shared/data [--check]

``--check`` rewrites nothing and exits 1 if the file's derived rows differ from a fresh derivation.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

DATA_FILE = REPO / "nas" / "accuracy" / "published_results.yaml"
OFA_CITATION = ("Cai et al., Once-for-All, ICLR 2020, arXiv 1908.09791; released specialised net "
                "(mit-han-lab/once-for-all, folder {folder}): top-1 from the folder name, "
                "MACs/params computed by experiments/published_results_build.py")
PROXYLESS_CITATION = ("Cai et al., ProxylessNAS, ICLR 2019, arXiv 1812.00332, Table 2 (top-1 of the "
                      "mobile net, also stated in the abstract's comparison); MACs/params computed by "
                      "experiments/published_results_build.py from the released proxyless_mobile.config")
FOLDER = re.compile(r"^(?P<device>.+?)_(?:lat-|gpu\d+-)?(?P<lat>\d+ms)?_?top1-(?P<top1>[\d.]+)_finetune-(?P<ft>\d+)$")


def _conv(h: int, cin: int, cout: int, k: int, stride: int, groups: int = 1, bn: bool = True):
    ho = (h - 1) // stride + 1
    w = k * k * (cin // groups) * cout
    return ho, ho * ho * w, w + (2 * cout if bn else 0)


def layer_list_costs(cfg: dict, image_size: int) -> tuple[int, int, int]:
    """(MACs, params, n_layers) of a ProxylessNASNets / MobileNetV3 layer list (no SE support needed here)."""
    h = image_size
    fc = cfg["first_conv"]
    h, macs, params = _conv(h, fc["in_channels"], fc["out_channels"], fc["kernel_size"], fc["stride"])
    n_layers = 0
    for block in cfg["blocks"]:
        m = block["mobile_inverted_conv"]
        if m["name"] == "ZeroLayer":
            continue
        if m["name"] != "MBInvertedConvLayer" or m.get("use_se"):
            raise ValueError(f"unsupported layer {m['name']} (se={m.get('use_se')})")
        cin, cout, k, s = m["in_channels"], m["out_channels"], m["kernel_size"], m["stride"]
        mid = m.get("mid_channels") or round(cin * m["expand_ratio"])
        if m["expand_ratio"] != 1:
            _, a, b = _conv(h, cin, mid, 1, 1)
            macs, params = macs + a, params + b
        h2, a, b = _conv(h, mid, mid, k, s, groups=mid)
        macs, params = macs + a, params + b
        _, a, b = _conv(h2, mid, cout, 1, 1)
        macs, params, h = macs + a, params + b, h2
        n_layers += 1
    for key in ("final_expand_layer", "feature_mix_layer"):
        if key in cfg and cfg[key]:
            layer = cfg[key]
            _, a, b = _conv(h, layer["in_channels"], layer["out_channels"], 1, 1, bn=layer.get("use_bn", True))
            macs, params = macs + a, params + b
    cl = cfg["classifier"]
    macs += cl["in_features"] * cl["out_features"]
    params += cl["in_features"] * cl["out_features"] + cl["out_features"]
    return int(macs), int(params), n_layers


def derive(shared: Path) -> list[dict]:
    from nas.api import convert
    from search_spaces import get_space

    rows = []
    spec = shared / "ofa" / "specialized"
    for folder in sorted(p for p in spec.iterdir() if p.is_dir()):
        m = FOLDER.match(folder.name)
        if not m:
            raise SystemExit(f"unexpected folder name {folder.name}")
        cfg = json.loads((folder / "net.config").read_text())
        res = json.loads((folder / "run.config").read_text())["image_size"]
        row = {"name": f"ofa-{folder.name.split('_top1')[0]}", "family": "", "recipe": "ofa",
               "recipe_notes": (f"Once-for-All progressive shrinking (KD from the largest net), then "
                                f"{m['ft']} epochs of fine-tuning of the extracted subnet"),
               "finetune_epochs": int(m["ft"]), "resolution": int(res)}
        if cfg["name"] == "MobileNetV3":
            conv = convert(folder)
            sp = get_space(conv["space"])
            X = sp.encode([conv["result"]])
            row["family"] = f"ofa-mbv3-{'w1.2' if sp.name == 'ofa' else 'w1.0'}"
            row["macs_m"] = round(float(sp.macs(X)[0]) / 1e6, 1)
            row["params_m"] = round(float(sp.params(X)[0]) / 1e6, 2)
        else:
            macs, params, _ = layer_list_costs(cfg, res)
            row["family"] = "ofa-proxyless-w1.3"
            row["macs_m"], row["params_m"] = round(macs / 1e6, 1), round(params / 1e6, 2)
        row["top1"] = float(m["top1"])
        row["citation"] = OFA_CITATION.format(folder=folder.name)
        row["source"] = "derived"
        rows.append(row)
    cfg = json.loads((shared / "proxylessnas" / "proxyless_mobile.config").read_text())
    macs, params, _ = layer_list_costs(cfg, 224)
    rows.append({"name": "proxylessnas-mobile", "family": "proxylessnas", "recipe": "scratch",
                 "recipe_notes": "searched with ProxylessNAS on Pixel 1 latency, trained from scratch",
                 "resolution": 224, "macs_m": round(macs / 1e6, 1), "params_m": round(params / 1e6, 2),
                 "top1": 74.6, "citation": PROXYLESS_CITATION, "source": "derived"})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shared_data", type=Path, help="the reference data folder (../shared/data)")
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = ap.parse_args()
    doc = yaml.safe_load(DATA_FILE.read_text())
    fresh = derive(args.shared_data)
    old = [r for r in doc["results"] if r.get("source") == "derived"]
    if args.check:
        same = old == fresh
        print("derived rows up to date" if same else "derived rows differ from a fresh derivation")
        return 0 if same else 1
    doc["results"] = [r for r in doc["results"] if r.get("source") != "derived"] + fresh
    header = DATA_FILE.read_text().split("\nresults:")[0]
    body = yaml.safe_dump({"results": doc["results"]}, sort_keys=False, width=110, allow_unicode=True)
    DATA_FILE.write_text(header + "\n" + body)
    print(f"wrote {len(fresh)} derived rows ({len(doc['results'])} in all) to {DATA_FILE.relative_to(REPO)}")
    for r in fresh:
        print(f"  {r['name']:<32} {r['family']:<20} r={r['resolution']:<4} {r['macs_m']:>7.1f}M MACs "
              f"{r['params_m']:>5.2f}M params  top-1 {r['top1']}")
    return 0


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "published_results_build"))
