"""OMG-Seg model (pure PyTorch): one module per component.

- `omg_seg.py`: `build_model(cfg)`, `OMGSeg` (image graph `forward_image`, prompt graph `forward_prompt`,
  `forward_train` with every layer's predictions).
- `backbones/`: `Backbone` interface + lazy registry (`clip_convnext.py` open_clip ConvNeXt-L, `efficientnet_lite.py`).
- `pixel_decoder.py` + `ms_deform_attn.py`: MSDeformAttnPixelDecoder with grid_sample deformable attention.
- `transformer_decoder.py` + `decoder_head.py`: masked-attention decoder (hand-written attention), queries, predictions.
- `classifier.py`: `classify`, `mask_pool`; `prompt_encoder.py`: point / box prompts; `position_encoding.py`.
- `state_dict.py`: reading state_dicts, errors naming every bad key; `checkpoint.py`: `load_model`,
  `save_checkpoint`, official key mapping and checks.
"""
from .checkpoint import CheckpointError, load_model, save_checkpoint
from .decoder_head import HeadOutputs, OMGSegHead
from .classifier import classify
from .omg_seg import OMGSeg, build_model

__all__ = ["OMGSeg", "build_model", "load_model", "save_checkpoint", "CheckpointError", "OMGSegHead",
           "HeadOutputs", "classify"]
