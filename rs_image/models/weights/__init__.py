"""Weights: one resolver from any source to a native state dict, format readers, and strict loading.

* :mod:`.resolver`: path / URL / state dict / model -> native state dict (checkpoint unwrapping with EMA
  preference, DDP / ``torch.compile`` prefixes, key maps); :func:`load_pretrained`.
* :mod:`.files`: readers by file format (torch, safetensors, Keras ``.h5``) and :func:`save_state_dict`.
* :mod:`.keras_h5`: the official Keras ResNet-RS ``.h5`` files -> native.
* :mod:`.tf_checkpoint`: TensorFlow 2 checkpoints read without TensorFlow (variables and EMA slots).
* :mod:`.hf_hub`: ``hf-hub:ORG/REPO`` names and hub folders (``config.json`` + ``model.safetensors``), timm's way.
* :mod:`.key_maps`: foreign key layouts -> native (timm built in; ``rs_video`` registers PyTorchVideo).
* :mod:`.strict_load`: :func:`load_state_dict_strict`, every mismatch in one :class:`WeightsError`.
"""

from .files import WEIGHTS_SUFFIXES, check_weights_output, read_weights_file, register_file_reader, save_state_dict
from .hf_hub import HF_HUB_PREFIX, HubError, HubWeights, hub_source, is_hf_hub_name, write_hub_folder
from .keras_h5 import KerasResNetRSInfo, KerasWeightsError, convert_keras_h5, inspect_keras_h5
from .key_maps import detect_format, register_key_map, timm_to_native, to_native
from .resolver import ResolvedWeights, WeightsSource, load_pretrained, resolve_weights, strip_wrapper_prefixes
from .strict_load import StateDict, WeightsError, key_mismatch_lines, load_state_dict_strict
from .tf_checkpoint import TFCheckpoint, TFCheckpointError, read_tf_checkpoint

__all__ = [
    "WeightsError", "WeightsSource", "ResolvedWeights", "resolve_weights", "load_pretrained",
    "load_state_dict_strict", "key_mismatch_lines", "strip_wrapper_prefixes", "read_weights_file",
    "register_file_reader", "save_state_dict", "check_weights_output", "WEIGHTS_SUFFIXES", "register_key_map", "detect_format", "to_native",
    "timm_to_native", "StateDict", "KerasWeightsError", "KerasResNetRSInfo", "convert_keras_h5",
    "inspect_keras_h5", "TFCheckpoint", "TFCheckpointError", "read_tf_checkpoint", "HF_HUB_PREFIX", "HubError",
    "HubWeights", "hub_source", "is_hf_hub_name", "write_hub_folder",
]
