"""Fitting a native state dict into a model, strictly: every mismatch is listed in one error."""

from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from rs_image.errors import UserError

__all__ = ["WeightsError", "StateDict", "key_mismatch_lines", "load_state_dict_strict"]

logger = logging.getLogger(__name__)

StateDict = Dict[str, torch.Tensor]


class WeightsError(UserError, ValueError):
    """A weight file that cannot be read or does not fit the model."""


def key_mismatch_lines(
    expected: Mapping[str, Tuple[int, ...]], sd: Mapping[str, torch.Tensor], target: str, limit: Optional[int] = None
) -> List[str]:
    """Lines listing the missing and unexpected keys of ``sd`` and its shape mismatches against
    ``expected`` shapes (empty when everything fits)."""
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    mismatched = [f"{k}: file {tuple(sd[k].shape)} vs {target} {tuple(expected[k])}"
                  for k in sorted(set(sd) & set(expected)) if tuple(sd[k].shape) != tuple(expected[k])]
    lines = []
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
        if keys:
            lines.append(f"  {what} ({len(keys)}): {keys[:limit] if limit else keys}")
    return lines


def _classifier_prefix(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("classifier", "head.fc") + "."


def _drop_unusable_classifier(model: nn.Module, own: Mapping[str, torch.Tensor], sd: StateDict, source: str) -> None:
    """Replace the source's classifier by the model's own when the model cannot use it, in place.

    That is when the model has no classifier (``features_only``, ``num_classes=0``) or one over the same
    features with another number of classes (ImageNet weights into a 400-class model). Any other
    classifier mismatch is an architecture difference and is left for the strict check to report.
    """
    prefix = _classifier_prefix(model)
    head_keys = [k for k in sd if k.startswith(prefix)]
    if not head_keys:
        return
    weight_key = prefix + "weight"
    classes = sd[weight_key].shape[0] if weight_key in sd and sd[weight_key].dim() == 2 else "?"
    if not any(k.startswith(prefix) for k in own):
        # Expected when building a backbone from classification weights: information, not a warning.
        logger.info("%s: the model has no classifier; the %s-class classifier (%s) is not used",
                    source, classes, ", ".join(head_keys))
        for k in head_keys:
            sd.pop(k)
        return
    same_features = (weight_key in sd and weight_key in own and sd[weight_key].dim() == 2
                     and sd[weight_key].shape[1] == own[weight_key].shape[1])
    if same_features and any(k in own and own[k].shape != sd[k].shape for k in head_keys):
        # Expected when fine-tuning on another label set, so information rather than a warning.
        logger.info(
            "%s: dropped the %s-class classifier (%s); the model's %s-class classifier stays freshly initialised",
            source, classes, ", ".join(head_keys), getattr(model, "num_classes", "?"),
        )
        for k in head_keys:
            if k in own:
                sd[k] = own[k]


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Load native ``sd`` into ``model``; any missing/unexpected key or shape mismatch raises, listing them.

    A classifier the model cannot use (another number of classes, or a model without classifier) is
    dropped with an INFO message; the model keeps its own (freshly initialised) classifier.
    """
    own = model.state_dict()
    sd = dict(sd)
    _drop_unusable_classifier(model, own, sd, source)
    # num_batches_tracked is bookkeeping that some exporters omit.
    for k in own:
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = own[k]
    problems = key_mismatch_lines({k: tuple(v.shape) for k, v in own.items()}, sd, "model")
    if problems:
        header = (f"cannot load {source} into {type(model).__name__} "
                  f"({getattr(model, 'pretrained_cfg', {}).get('architecture', '')}):")
        raise WeightsError("\n".join([header] + problems))
    model.load_state_dict(sd, strict=True)
