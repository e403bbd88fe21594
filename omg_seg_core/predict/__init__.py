"""Inference: `OMGSegPredictor` (takes a built model) and `build_predictor` (from a name or checkpoint), with the
steps the predictor runs around the model: pre-/post-processing, split_apart, edge refinement, prompt selection
and refinement, and the text request (phrase, position words, candidate pieces, colour naming)."""
from .build import build_predictor
from .predictor import OMGSegPredictor

__all__ = ["OMGSegPredictor", "build_predictor"]
