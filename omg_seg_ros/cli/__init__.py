"""Console tools: omg-seg-eval (bag_eval.py), omg-seg-make-bag, omg-seg-demo, the image player."""
