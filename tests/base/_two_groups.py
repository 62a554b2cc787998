"""Four small MLPs in two groups, of one and of three, none pretrained: the candidates of the
multi-process tests (tests/base/test_distributed.py), run with ``capjax select --candidates``.

On 2 processes of 2 devices the groups lie one after the other around the ring of devices
(p0, p1, p0, p1; :func:`capjax.training.groups.plan_groups`): the single ``w16`` on process
0, then the three ``w32`` on processes 1, 0, 1. Each name ends with the process whose
devices train it. Laid from the first device each, the groups would put three of the four
on process 0.
"""

from capjax.training import Candidate

SMALL = dict(family="mlp", depth=1, probe_widths=(8,), batch_size=32)


def build() -> list[Candidate]:
    return [Candidate("w16-p0", width=16, lr=3e-3, seed=0, **SMALL),
            *(Candidate(f"w32-{k}-p{pid}", width=32, lr=lr, seed=k, **SMALL)
              for k, (lr, pid) in enumerate(((1e-3, 1), (3e-3, 0), (1e-2, 1))))]
