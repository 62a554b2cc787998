"""Four small MLPs in two groups of two, none pretrained: the candidates of the multi-process
tests (tests/base/test_distributed.py), run with ``capjax select --candidates``.

In each group the first member's lanes sit on process 0 and the second's on process 1.
"""

from capjax.training import Candidate

SMALL = dict(family="mlp", depth=1, probe_widths=(8,), batch_size=32)


def build() -> list[Candidate]:
    return [Candidate(f"w{width}-{which}", width=width, lr=lr, seed=seed, **SMALL)
            for which, lr, seed in (("first", 3e-3, 0), ("second", 1e-3, 1)) for width in (16, 32)]
