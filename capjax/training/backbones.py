"""Your own backbones: Flax NNX modules, Linen ``(module, variables)`` pairs, pure ``(apply_fn, params)``.

:func:`as_backbone` turns any of the three into a :class:`Backbone`: its parameters and
its non-trainable state (BatchNorm statistics, NNX random-stream counters) as two *flat*
dicts ``{path: array}``, and a :class:`Program`, the pure function that applies them:

``program.features(backbone, x) -> (batch, d)`` in evaluation mode, and
``program.train_features(backbone, x, key) -> (features, backbone')`` in training mode,
where ``backbone = {"params": {...}, "state": {...}}`` and ``backbone'`` carries the new state.

Flat dicts of string keys are what ``jax.vmap`` stacks, orbax checkpoints and
``ravel_pytree`` snapshots without caring whether the user's tree held NNX ``State``,
lists or tuples; the :class:`Program` keeps the tree definition to rebuild it. Two
backbones with equal programs (equal NNX graph definition, equal Linen module, or the
same ``apply_fn``, and equal parameter names, shapes and dtypes) train in one vmapped
group and compile once (docs/method.md §2.3; docs/architecture.md says what mixed zoos cost).

Training mode: an NNX module is switched with ``.train()`` / ``.eval()``; a Linen module
gets ``train=``, ``training=`` or ``deterministic=`` when its ``__call__`` takes one, its
non-``params`` collections as mutable, and ``rngs={"dropout": key}``; a pure function
has no mode. The key of each step is the candidate's own (seed, epoch, step), so
dropout masks are reproducible and a resumed run draws the same ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from capjax.base.validation import CapjaxInputError

KINDS = ("nnx", "linen", "pure")


def _flatten(tree: Any) -> tuple[dict[str, Any], Any, tuple[str, ...]]:
    """``({path: leaf}, treedef, paths in leaf order)`` of a pytree."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = tuple(jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in pairs)
    if len(set(paths)) != len(paths):  # e.g. keys "a/b" and ("a", "b"): names would collide
        paths = tuple(f"{i:05d}:{p}" for i, p in enumerate(paths))
    return dict(zip(paths, (leaf for _, leaf in pairs), strict=True)), treedef, paths


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a flat dict maps back to the user's tree: its definition and leaf order."""

    treedef: Any
    paths: tuple[str, ...]

    def unflatten(self, flat: dict[str, Any]) -> Any:
        return jax.tree_util.tree_unflatten(self.treedef, [flat[p] for p in self.paths])


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _key_data(tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed PRNG keys as their uint32 data (arrays that stack and checkpoint), and their impls."""
    impls = {p: str(jax.random.key_impl(v)) for p, v in tree.items() if _is_key(v)}
    return {p: jax.random.key_data(v) if p in impls else v for p, v in tree.items()}, impls


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """The compiled-function identity of a backbone: equal programs share one vmapped group.

    Attributes:
      kind: ``"nnx"``, ``"linen"`` or ``"pure"``.
      token: what equality and hashing compare (the graph definition, module or function,
        and the parameter and state layouts).
      apply: ``apply(params_tree, state_tree, x, train, key) -> (features, state_tree)``
        on the user's own trees.
      params_layout, state_layout: rebuild the user's trees from flat dicts.
      key_impls: state paths holding PRNG keys (stored as uint32 data), and their impls.
      describe: a stable, human-readable description (for fingerprints).
    """

    kind: str
    token: Hashable
    apply: Callable[..., tuple[jax.Array, Any]]
    params_layout: Layout
    state_layout: Layout
    key_impls: dict[str, str]
    describe: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and self.token == other.token

    def __hash__(self) -> int:
        return hash(self.token)

    def _trees(self, backbone: dict, key: jax.Array | None) -> tuple[Any, Any]:
        state = dict(backbone["state"])
        for path, impl in self.key_impls.items():
            stream = jax.random.wrap_key_data(state[path], impl=impl)
            if key is not None:  # in training, each random stream is re-keyed by the step's key
                stream = jax.random.fold_in(jax.random.fold_in(stream, key[0]), key[1])
            state[path] = stream
        return self.params_layout.unflatten(backbone["params"]), self.state_layout.unflatten(state)

    def features(self, backbone: dict, x: jax.Array) -> jax.Array:
        """``(batch, d)`` features of ``x`` in evaluation mode. Pure."""
        params, state = self._trees(backbone, None)
        return self.apply(params, state, x, False, None)[0]

    def train_features(self, backbone: dict, x: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
        """Features in training mode and the backbone with its updated state; ``key``: uint32 ``(2,)``."""
        params, state = self._trees(backbone, key)
        feats, new_state = self.apply(params, state, x, True, key)
        flat, _, _ = _flatten(new_state)
        flat, _ = _key_data(flat)
        return feats, {"params": backbone["params"], "state": {p: flat[p] for p in backbone["state"]}}


@dataclasses.dataclass(frozen=True, eq=False)
class Backbone:
    """A user's backbone, normalised: a :class:`Program` and its initial flat trees.

    Attributes:
      program: how to apply it; equal programs train in one group.
      params: ``{path: array}``, the trainable parameters (fine-tuned).
      state: ``{path: array}``, the rest (updated by training-mode calls, never by the
        optimizer); empty for pure functions.
      source: the object it was made from (to rebuild it with trained values).
    """

    program: Program
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    source: Any = None

    def tree(self) -> dict:
        """``{"params", "state"}``: the backbone subtree of the fine-tuning model."""
        return {"params": dict(self.params), "state": dict(self.state)}

    @property
    def fingerprint(self) -> str:
        """A short hash of the program's description and the initial values."""
        h = hashlib.blake2b(self.program.describe.encode(), digest_size=8)
        for part in (self.params, self.state):
            for path in sorted(part):
                h.update(path.encode())
                h.update(np.ascontiguousarray(part[path]).tobytes())
        return h.hexdigest()

    def rebuild(self, backbone: dict) -> Any:
        """The user's kind of object with ``backbone``'s values (e.g. a trained model's ``"backbone"``).

        An ``nnx.Module`` for NNX, ``(module, variables)`` for Linen, ``(apply_fn, params)``
        for a pure function.
        """
        params, state = self.program._trees(jax.tree.map(jnp.asarray, backbone), None)
        kind = self.program.kind
        if kind == "nnx":
            from flax import nnx

            module = nnx.merge(self.program.token[1], params, state)
            module.eval()
            return module
        if kind == "linen":
            return self.source[0], {"params": params, **state}
        return self.source[0], params


def _linen_mode(module: Any) -> Callable[[bool], dict]:
    """The keyword a Linen module's ``__call__`` takes for its mode, as a function of ``train``."""
    names = inspect.signature(type(module).__call__).parameters
    if "train" in names:
        return lambda train: {"train": train}
    if "training" in names:
        return lambda train: {"training": train}
    if "deterministic" in names:
        return lambda train: {"deterministic": not train}
    return lambda train: {}


def _shapes(flat: dict[str, Any]) -> tuple:
    return tuple((p, tuple(np.shape(v)), str(np.asarray(v).dtype) if not _is_key(v) else "key")
                 for p, v in flat.items())


def _program(kind: str, ident: Hashable, apply: Callable, params: Any, state: Any,
             describe: str) -> tuple[Program, dict, dict]:
    flat_p, def_p, paths_p = _flatten(params)
    flat_s, def_s, paths_s = _flatten(state)
    token = (kind, ident, _shapes(flat_p), _shapes(flat_s))
    flat_s, impls = _key_data(flat_s)
    program = Program(kind, token, apply, Layout(def_p, paths_p), Layout(def_s, paths_s), impls,
                      f"{kind}:{describe}:{token[2]}:{token[3]}")
    host = lambda flat: {p: np.asarray(jax.device_get(v)) for p, v in flat.items()}  # noqa: E731
    return program, host(flat_p), host(flat_s)


def _from_nnx(module: Any) -> tuple[Program, dict, dict]:
    from flax import nnx

    graph, params, state = nnx.split(module, nnx.Param, ...)
    copy = nnx.merge(graph, params, state)  # the user's module keeps its own mode
    copy.train()
    train_graph = nnx.graphdef(copy)
    copy.eval()
    eval_graph = nnx.graphdef(copy)

    def apply(p, s, x, train, key):
        m = nnx.merge(train_graph if train else eval_graph, p, s)
        out = m(x)
        return out, nnx.state(m, nnx.Not(nnx.Param))

    return _program("nnx", eval_graph, apply, params, state, f"{type(module).__module__}.{type(module).__qualname__}")


def _from_linen(module: Any, variables: Any) -> tuple[Program, dict, dict]:
    variables = dict(variables)
    if "params" not in variables:
        raise CapjaxInputError(
            f"the Linen variables hold {sorted(variables)} but no 'params'; pass (module, module.init(key, x))"
        )
    params = variables.pop("params")
    mode = _linen_mode(module)
    mutable = sorted(variables)

    def apply(p, s, x, train, key):
        rngs = {"dropout": jax.random.wrap_key_data(key)} if train else None
        if train and mutable:
            out, new = module.apply({"params": p, **s}, x, **mode(train), rngs=rngs, mutable=mutable)
            return out, {**s, **new}
        return module.apply({"params": p, **s}, x, **mode(train), rngs=rngs), s

    return _program("linen", module, apply, params, variables, repr(module))


def _from_pure(apply_fn: Callable, params: Any) -> tuple[Program, dict, dict]:
    def apply(p, s, x, train, key):
        return apply_fn(p, x), s

    name = f"{getattr(apply_fn, '__module__', '')}.{getattr(apply_fn, '__qualname__', repr(apply_fn))}"
    return _program("pure", apply_fn, apply, params, {}, name)


def as_backbone(obj: Any, what: str = "backbone") -> Backbone:
    """A :class:`Backbone` from an ``nnx.Module``, a Linen ``(module, variables)`` pair, a pure
    ``(apply_fn, params)`` pair with ``apply_fn(params, x) -> (batch, d)``, or a Backbone.

    ``what`` names the object in errors (e.g. ``"candidate 'resnet'"``).
    """
    if isinstance(obj, Backbone):
        return obj
    from flax import linen, nnx

    if isinstance(obj, nnx.Module):
        made = _from_nnx(obj)
    elif isinstance(obj, tuple | list) and len(obj) == 2 and isinstance(obj[0], linen.Module):
        try:
            made = _from_linen(*obj)
        except CapjaxInputError as err:
            raise CapjaxInputError(f"{what}: {err}") from None
    elif isinstance(obj, tuple | list) and len(obj) == 2 and callable(obj[0]):
        made = _from_pure(*obj)
    else:
        raise CapjaxInputError(
            f"{what} is a {type(obj).__name__}; pass an nnx.Module, a Linen (module, variables) pair "
            "or a pure (apply_fn, params) pair with apply_fn(params, x) -> (batch, d) features"
        )
    if not made[1]:
        raise CapjaxInputError(f"{what} has no trainable parameters; pass a backbone with parameters to fine-tune")
    return Backbone(*made, source=None if isinstance(obj, nnx.Module) else tuple(obj))


def check_backbone(backbone: Backbone, x: np.ndarray, what: str) -> int:
    """The feature size ``d`` of ``backbone`` on a real batch ``x``, or a one-line error.

    Runs it once in evaluation and once in training mode: it must not fail, must return
    ``(batch, d)``, and must give finite features.
    """
    tree = jax.tree.map(jnp.asarray, backbone.tree())
    shape = tuple(x.shape)
    try:
        feats = backbone.program.features(tree, jnp.asarray(x))
        backbone.program.train_features(tree, jnp.asarray(x), jnp.zeros(2, jnp.uint32))
    except CapjaxInputError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of user code is reported in one line
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CapjaxInputError(
            f"{what}: the backbone fails on a batch of the data of shape {shape} ({type(err).__name__}: {first}); "
            "make it take inputs of that shape"
        ) from None
    if np.ndim(feats) != 2 or np.shape(feats)[0] != shape[0]:
        raise CapjaxInputError(
            f"{what}: the backbone returns features of shape {tuple(np.shape(feats))} for a batch of "
            f"{shape[0]}; it must return (batch, d): flatten its output, e.g. h.reshape(h.shape[0], -1)"
        )
    if not np.all(np.isfinite(np.asarray(feats))):
        raise CapjaxInputError(
            f"{what}: the backbone gives NaN/inf features on the first {shape[0]} training examples; check its "
            "parameters (e.g. NaN in loaded weights) and the inputs' scale"
        )
    return int(np.shape(feats)[1])
