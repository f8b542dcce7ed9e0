"""A custom search space in a few dozen lines: a small MobileNet-like chain (the README's worked example).

    nas search --space-module experiments/custom_space.py:TinyChain --target pixel --latency 20ms

``ChainSpace`` derives the dims, the arch format (``{"ops": [...]}``), sampling, block keys,
vectorised pricing, MACs and ``build`` from the slots declared here. The block keys use the
standard ``expanded_conv`` / ``Conv`` / ``Logits`` ops, so the shipped Pixel 1 profile (a fitted
operator cost model) prices them without any measurement; on this machine, measure them with
``nas profile --space experiments/custom_space.py:TinyChain --device D`` (every command's
``--space`` takes a ``PATH.py:ClassName`` spec; only ``nas search`` also spells it ``--space-module``).
"""

from __future__ import annotations

from search_spaces import BlockKey, register_space
from search_spaces.chain import ChainSpace, Slot
from search_spaces.mobile_blocks import build_block, down, mbconv_key

OPTIONS = {"k3e3": (3, 3), "k3e6": (3, 6), "k5e3": (5, 3), "k5e6": (5, 6)}
STAGES = ((24, 2, 2), (40, 2, 2), (80, 3, 2), (112, 2, 1), (192, 2, 2))  # (width, layers, first stride)


@register_space("tiny-chain")
class TinyChain(ChainSpace):
    """TinyChain: an 11-layer MobileNetV2-like chain at 160 px (the custom-space example)."""

    image_size = 160
    stem, head, n_classes = 16, 1280, 1000

    def slots(self):
        size, cin, slots = down(self.image_size, 2), self.stem, []
        for cout, n, first_stride in STAGES:
            for i in range(n):
                stride = first_stride if i == 0 else 1
                residual = stride == 1 and cin == cout
                names = list(OPTIONS) + (["skip"] if residual else [])
                keys = [mbconv_key(size, cin, cout, cin * e, k, stride, residual) for k, e in OPTIONS.values()]
                slots.append(Slot(f"ops[{len(slots)}]", tuple(names), tuple(keys + [None] * residual)))
                size, cin = down(size, stride), cout
        return slots

    def fixed_blocks(self):
        r, f, last = self.image_size, down(self.image_size, 2), down(self.image_size, 32)
        return ([BlockKey("Conv", (r, r, 3), (f, f, self.stem), (("hs", 0),))],
                [BlockKey("Conv_1", (last, last, STAGES[-1][0]), (last, last, self.head), (("hs", 0),)),
                 BlockKey("Logits", (last, last, self.head), (self.n_classes,))])

    def build_block(self, key):
        # Any nn.Module works here; the library's MobileNet blocks keep the example short.
        return build_block(key, act="relu")


if __name__ == "__main__":  # a quick look at the space without the CLI
    import numpy as np

    space = TinyChain()
    X = space.sample_encoded(np.random.default_rng(0), 3)
    for arch, macs in zip(space.decode(X), space.macs(X)):
        print(f"{macs / 1e6:6.1f} MMACs  {arch['ops']}")
