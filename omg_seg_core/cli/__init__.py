"""Console scripts (omg-seg-train, omg-seg-eval-synth, omg-seg-export; `python -m omg_seg_core.cli.eval_video`) and
shared helpers."""
from __future__ import annotations


def parse_overrides(items: list[str], option: str) -> dict:
    """`KEY=VALUE` command-line overrides -> {key: value}; values parsed as YAML scalars (0.5, -1, true, auto)."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option} expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(val)
    return out
