"""Random dense stacks and losses shared by the core tests."""

import jax
import jax.numpy as jnp


def random_stack(seed, sizes, dtype=None, bias_scale=0.1):
    dtype = dtype or jnp.result_type(float)  # float64 inside jax.enable_x64, else float32
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * len(sizes))
    return [
        {
            "kernel": jax.random.normal(keys[2 * l], (sizes[l], sizes[l + 1]), dtype)
            / jnp.sqrt(sizes[l]),
            "bias": bias_scale * jax.random.normal(keys[2 * l + 1], (sizes[l + 1],), dtype),
        }
        for l in range(len(sizes) - 1)
    ]


def random_batch(seed, batch, d_in, n_classes, dtype=None):
    dtype = dtype or jnp.result_type(float)
    kx, ky = jax.random.split(jax.random.PRNGKey(seed + 1000))
    return jax.random.normal(kx, (batch, d_in), dtype), jax.random.randint(
        ky, (batch,), 0, n_classes
    )


def ce_loss(head, y):
    """Mean cross-entropy through a linear head; closes over head and labels, as beta_eff expects."""

    def loss_fn(out):
        logits = out @ head["kernel"] + head["bias"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    return loss_fn
