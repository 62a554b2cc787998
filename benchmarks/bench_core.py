"""Cost of measuring beta_eff, side by side with the training it observes (issue: core).

(a) overhead of recording beta_eff once per epoch in the digits example, as a fraction of
    the epoch's training time (target <= 5%);
(b) one beta_eff measurement / one training step, for a 512-256-128 probe at batch 256,
    per interaction (hessian target <= 3);
(c) how close the coupling contraction runs to the machine: its achieved FLOP/s over a
    plain matmul's of equal FLOPs (target >= 0.5), and the log-log slope of its time
    against probe width.

    python benchmarks/bench_core.py            # writes benchmarks/results/bench_core.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import capjax  # noqa: E402
from benchmarks._timing import best_time, write_json  # noqa: E402
from capjax.capacitance.dynamics import coupling_strengths  # noqa: E402
from examples import digits_probe  # noqa: E402


def overhead_in_digits_example(epochs: int = 6) -> dict:
    """beta_eff once per epoch / the epoch's training time, per interaction and probe batch."""
    rows = []
    for interaction in capjax.INTERACTIONS:
        for probe_batch in (64, 256):
            h = digits_probe.run(epochs=epochs, pretrain_epochs=1, probe_batch=probe_batch, interaction=interaction)
            # Epoch 0 (and the first measurement) carry compilation; compare steady-state epochs.
            train, measure = np.sum(h["train_s"][2:]), np.sum(h["measure_s"][2:])
            rows.append(
                {
                    "interaction": interaction,
                    "probe_batch": probe_batch,
                    "epochs_timed": epochs - 1,
                    "train_s": train,
                    "measure_s": measure,
                    "overhead_fraction": measure / train,
                }
            )
    return {"rows": rows}


def _ce(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def measurement_vs_training_step(batch: int = 256, d_in: int = 784, widths=(512, 256, 128)) -> dict:
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {
        "backbone": {
            "kernel": jax.random.normal(keys[0], (d_in, widths[0])) / np.sqrt(d_in),
            "bias": jnp.zeros(widths[0]),
        },
        "probe": capjax.init_probe(keys[1], widths[0], widths),
        "head": {
            "kernel": jax.random.normal(keys[2], (widths[-1], 10)) / np.sqrt(widths[-1]),
            "bias": jnp.zeros(10),
        },
    }
    x = jax.random.normal(keys[3], (batch, d_in))
    y = jnp.arange(batch) % 10
    head = lambda p, out: out @ p["head"]["kernel"] + p["head"]["bias"]
    features = lambda p, x: jax.nn.relu(x @ p["backbone"]["kernel"] + p["backbone"]["bias"])

    def loss(p):
        return _ce(head(p, capjax.apply_probe(p["probe"], features(p, x))), y)

    tx = capjax.freeze_probe(optax.adam(1e-3))
    opt_state = tx.init(params)

    @jax.jit
    def train_step(p, s):
        g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    t_step = best_time(train_step, params, opt_state)
    out = {"probe": [widths[0], *widths], "batch": batch, "train_step_s": t_step}
    for name in capjax.INTERACTIONS:
        measure = jax.jit(
            lambda p, name=name: capjax.beta_eff(
                p["probe"], features(p, x), lambda o: _ce(head(p, o), y), interaction=name, lr=1e-3
            )
        )
        t = best_time(measure, params)
        out[name] = {"measure_s": t, "ratio_to_train_step": t / t_step}
    return out


def _coupling_flops(sizes, batch):
    # Per consecutive pair: the (n, h*i) outer product, then a (h*i, n) @ (n, j) matmul.
    return sum(batch * h * i + 2 * batch * h * i * j for h, i, j in zip(sizes[:-2], sizes[1:-1], sizes[2:]))


def coupling_roofline(batch: int = 256, widths=(64, 128, 256, 512)) -> dict:
    rows = []
    for w in widths:
        sizes = [w, w, w // 2, w // 4]
        layers = capjax.init_probe(jax.random.PRNGKey(w), sizes[0], sizes[1:])
        x = jax.random.normal(jax.random.PRNGKey(1), (batch, sizes[0]))
        y = jnp.arange(batch) % 10
        head = jax.random.normal(jax.random.PRNGKey(2), (sizes[-1], 10))
        f = jax.jit(lambda l, x, head, y: coupling_strengths(l, x, lambda o: _ce(o @ head, y)).s_in)
        t = best_time(f, layers, x, head, y, repeat=3)
        flops = _coupling_flops(sizes, batch)
        m = int(round((flops / 2) ** (1 / 3)))
        a = jax.random.normal(jax.random.PRNGKey(3), (m, m))
        t_mm = best_time(jax.jit(jnp.matmul), a, a, repeat=3)
        rows.append(
            {
                "width": w,
                "sizes": sizes,
                "coupling_s": t,
                "coupling_gflops": flops / t / 1e9,
                "matmul_size": m,
                "matmul_gflops": 2 * m**3 / t_mm / 1e9,
                "fraction_of_matmul_rate": (flops / t) / (2 * m**3 / t_mm),
            }
        )
    slope = np.polyfit(np.log([r["width"] for r in rows]), np.log([r["coupling_s"] for r in rows]), 1)[0]
    return {
        "batch": batch,
        "rows": rows,
        "loglog_slope_time_vs_width": float(slope),
        "expected_slope": 3.0,
    }


def main() -> None:
    results = {
        "a_overhead_digits": overhead_in_digits_example(),
        "b_measure_vs_step": measurement_vs_training_step(),
        "c_coupling_roofline": coupling_roofline(),
    }
    path = write_json("bench_core", results)
    a, b, c = (
        results["a_overhead_digits"],
        results["b_measure_vs_step"],
        results["c_coupling_roofline"],
    )
    for r in a["rows"]:
        print(
            f"(a) {r['interaction']:8s} probe batch {r['probe_batch']:3d}: beta_eff once per epoch / epoch "
            f"training time (digits example) = {r['overhead_fraction']:.1%}  [target <= 5%]"
        )
    for name in capjax.INTERACTIONS:
        print(
            f"(b) {name:9s} measurement / training step (probe {b['probe']}, batch {b['batch']}): "
            f"{b[name]['ratio_to_train_step']:.2f}x"
        )
    for r in c["rows"]:
        print(
            f"(c) width {r['width']:4d}: coupling {r['coupling_gflops']:.1f} GFLOP/s vs matmul "
            f"{r['matmul_gflops']:.1f} GFLOP/s = {r['fraction_of_matmul_rate']:.2f}"
        )
    print(f"(c) log-log slope of coupling time vs width: {c['loglog_slope_time_vs_width']:.2f} (cost grows as width^3)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
