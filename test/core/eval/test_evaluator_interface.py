"""Every evaluator has the same three verbs (detectron2's DatasetEvaluator): reset / process / evaluate, and
reset really forgets what was processed."""
import numpy as np

from omg_seg_core.eval import Evaluator
from omg_seg_core.eval.latency import LatencyRecorder
from omg_seg_core.eval.mask_ap import MaskAPEvaluator
from omg_seg_core.eval.mot import VideoEvaluator
from omg_seg_core.eval.panoptic_quality import PanopticEvaluator
from omg_seg_core.eval.prompts import PromptEvaluator
from omg_seg_core.eval.runner import Evaluation
from omg_seg_core.eval.semantic import SemanticEvaluator
from omg_seg_core.eval.stq import STQEvaluator


def test_every_evaluator_has_reset_process_evaluate():
    names, things = ["a", "b"], [True, False]
    evaluators = [PanopticEvaluator(names, things), SemanticEvaluator(names), MaskAPEvaluator(names, things),
                  PromptEvaluator(), LatencyRecorder(), VideoEvaluator(names, things), STQEvaluator(names, things),
                  Evaluation(names, things)]
    for ev in evaluators:
        assert isinstance(ev, Evaluator), type(ev).__name__


def test_reset_forgets_processed_frames():
    sem = SemanticEvaluator(["a", "b"])
    sem.process(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    assert sem.num_images == 1
    sem.reset()
    assert sem.num_images == 0
    lat = LatencyRecorder()
    lat.process({"total": 3.0})
    lat.reset()
    assert lat.evaluate() == {}
    ev = Evaluation(["a"], [True])
    ev.skip("why")
    ev.reset()
    assert ev.evaluate()["skipped"] == {} and ev.evaluate()["frames_evaluated"] == 0
