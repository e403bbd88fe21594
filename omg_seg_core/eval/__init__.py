"""Evaluation metrics and the run engine behind `omg-seg-eval` (ROS-free; see docs/evaluation.md).

Each evaluator follows detectron2's reset / process / evaluate interface (`Evaluator` below; the video evaluators
add `start_sequence()` between sequences and `VideoEvaluator.process_target` for persistent targets) and can be
checkpointed:
`PanopticEvaluator` (PQ/SQ/RQ, panopticapi semantics), `SemanticEvaluator` (mIoU), `MaskAPEvaluator` (COCO segm AP
with pycocotools), `PromptEvaluator` (prompt mIoU), `LatencyRecorder` (p50/p95 per stage), `mot.VideoEvaluator`
(IDF1/HOTA/ID switches/VPQ). `runner.Evaluation` combines them per frame; `report.write_report` writes the outputs.
Imported lazily so `import omg_seg_core.eval` stays cheap.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Protocol, runtime_checkable

_LAZY = {
    "PanopticEvaluator": "panoptic_quality", "PanopticFrame": "panoptic_quality",
    "panoptic_from_segments": "panoptic_quality", "panoptic_from_labels": "panoptic_quality",
    "SemanticEvaluator": "semantic", "MaskAPEvaluator": "mask_ap", "PromptEvaluator": "prompts",
    "LatencyRecorder": "latency", "Evaluation": "runner", "GroundTruth": "runner", "write_report": "report",
    "VideoEvaluator": "mot",
}


@runtime_checkable
class Evaluator(Protocol):
    """What every evaluator offers (detectron2's `DatasetEvaluator`): `reset()` forgets all data, `process(...)`
    adds one frame (arguments per evaluator), `evaluate()` returns the metrics dict of everything processed."""

    def reset(self) -> None: ...

    def process(self, *args: Any, **kwargs: Any) -> Any: ...

    def evaluate(self) -> dict: ...


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"omg_seg_core.eval.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'omg_seg_core.eval' has no attribute '{name}'")


__all__ = ["Evaluator", *_LAZY]
