"""Training: what a model is, and how a sweep runs it. The only room that runs optimisers.

``spec`` describes a candidate (:class:`Candidate`, :class:`Architecture`); ``backbones``
normalises your own NNX, Linen and pure-function backbones and ``own`` makes them
candidates (:class:`Model`); ``model`` is the
fine-tuning model as pure functions (init, apply, train epoch); ``pretrain`` builds and
caches backbones with orbax; ``zoos`` lists candidates; ``recorders`` are the per-epoch
signal records; ``groups``, ``checkpoints`` and ``sweep`` run a zoo, resumably.
"""

from capjax.training import backbones, checkpoints, groups, model, own, pretrain, recorders, spec, sweep, zoos
from capjax.training.backbones import Backbone, as_backbone
from capjax.training.checkpoints import trained_params
from capjax.training.model import (
    PROBE_SEED,
    apply_head,
    backbone_features,
    feature_dim,
    finetune_optimizer,
    init_backbone,
    init_model,
    model_logits,
    random_backbones,
    train_epoch,
)
from capjax.training.own import Model, own_candidates
from capjax.training.pretrain import default_cache_dir, pretrain_backbone, pretrain_backbones
from capjax.training.recorders import RecordFn, SweepContext, record_fns
from capjax.training.spec import FAMILIES, SOURCES, Architecture, Candidate, GroupKey, check_candidates
from capjax.training.sweep import BETA_COST, run_sweep
from capjax.training.zoos import ZOOS, hyperparameter_zoo, make_zoo, transfer_zoo

__all__ = [
    "BETA_COST",
    "ZOOS",
    "FAMILIES",
    "PROBE_SEED",
    "SOURCES",
    "Architecture",
    "Backbone",
    "Candidate",
    "GroupKey",
    "Model",
    "RecordFn",
    "SweepContext",
    "apply_head",
    "as_backbone",
    "backbones",
    "backbone_features",
    "check_candidates",
    "checkpoints",
    "default_cache_dir",
    "feature_dim",
    "finetune_optimizer",
    "groups",
    "hyperparameter_zoo",
    "init_backbone",
    "init_model",
    "model",
    "make_zoo",
    "model_logits",
    "own",
    "own_candidates",
    "pretrain",
    "pretrain_backbone",
    "pretrain_backbones",
    "random_backbones",
    "record_fns",
    "recorders",
    "run_sweep",
    "spec",
    "sweep",
    "train_epoch",
    "trained_params",
    "transfer_zoo",
    "zoos",
]
