"""Datasets: the synthetic scene generator (`synth`) and the COCO-panoptic reader/writer (`coco_panoptic`)."""
