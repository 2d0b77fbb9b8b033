"""The ResNet-RS training recipe, shared by the image and the video models.

=====================================  ==========================================================
label smoothing 0.1                    :func:`build_loss`
SGD momentum 0.9 (+ Nesterov option)   :func:`build_sgd`
weight decay 4e-5, conv/linear only    :func:`param_groups_weight_decay`
LR scaled with the global batch        :func:`scaled_lr`
cosine decay with linear warm-up       :func:`build_cosine_warmup_scheduler`
EMA 0.9999 + TF warm-up, BN buffers    :class:`ModelEma`
BN momentum conventions, precise BN    :mod:`rs_image.recipe.batchnorm`
frozen BN (fine-tuning)                :func:`freeze_batchnorm`
frozen stages, layer-wise LR decay     :mod:`rs_image.recipe.finetune`, :func:`param_groups_layer_decay`
dropout / stochastic depth schedule    :mod:`rs_image.recipe.regularization`
MixUp / CutMix (optional, images)      :class:`BatchMixup`
=====================================  ==========================================================
"""

from .batchnorm import (
    check_bn_ema_convention,
    FrozenBatchNorm,
    convert_sync_batchnorm,
    freeze_batchnorm,
    set_bn_momentum,
    tf_to_torch_bn_momentum,
    update_precise_bn,
)
from .ema import ModelEma, ema_decay_at
from .finetune import FineTuneError, freeze_stages, num_depths, parameter_depths
from .loss import build_loss
from .mixup import BatchMixup
from .optim import build_sgd, current_lr, param_groups_layer_decay, param_groups_weight_decay, scaled_lr
from .regularization import dropout_rates, model_kwargs_from_cfg, stochastic_depth_rates
from .schedule import build_cosine_warmup_scheduler, cosine_warmup_lr

__all__ = [
    "build_loss", "ModelEma", "ema_decay_at", "build_sgd", "param_groups_weight_decay", "scaled_lr",
    "build_cosine_warmup_scheduler", "cosine_warmup_lr", "set_bn_momentum", "tf_to_torch_bn_momentum",
    "check_bn_ema_convention", "update_precise_bn", "convert_sync_batchnorm", "model_kwargs_from_cfg",
    "stochastic_depth_rates", "dropout_rates", "BatchMixup", "FrozenBatchNorm", "freeze_batchnorm", "FineTuneError",
    "freeze_stages", "num_depths", "parameter_depths", "param_groups_layer_decay", "current_lr",
]
