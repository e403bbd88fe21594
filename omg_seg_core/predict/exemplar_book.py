"""Named exemplars ("my mug"): `ExemplarBook` stores them, finds a name in a request, saves and loads them.

A name is lower-case words (letters, digits, '-', '_', apostrophes) separated by single spaces, at most
MAX_NAME_LENGTH characters; a leading article or demonstrative ("the", "a", "an", "this", "that") is not part of
it, a possessive is: "My  Mug" and "this my mug" name "my mug", which "segment my mug" asks for (the request's
command words are stripped by text_query.extract_phrase) while "segment the mug" still asks for every mug.
Teaching a name again adds a view (another example of the same object, up to `max_views`; the oldest view is
dropped beyond that): a candidate's score is its best over the views.

File format (`save` / `load`): one .npz written atomically (temporary file + rename) holding, per view, the
exemplar vectors stacked (`query`, `class_embed`, `pooled`, `colour`, `query_iou`, `area`) and a JSON header
(`meta`: format version, the model name and vector sizes, each view's name and source). `load` refuses a file
made by a model with other vector sizes, and a file that is not one, with a ValueError saying which.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .colour_names import BASIC_COLOUR_TERMS
from .exemplar import Exemplar

FORMAT_VERSION = 1
MAX_NAME_LENGTH = 64
_WORD = re.compile(r"^[a-z0-9][a-z0-9'_-]*$")
_LEADING = ("the", "a", "an", "this", "that")


def normalise_name(name: str) -> str:
    """"  My  Mug " -> "my mug", "the box-7" -> "box-7" (module docstring); ValueError naming the problem for an
    empty or invalid name."""
    if not isinstance(name, str):
        raise ValueError(f"exemplar name must be a string, got {type(name).__name__}")
    words = name.lower().split()
    while len(words) > 1 and words[0] in _LEADING:
        words = words[1:]
    out = " ".join(words)
    if not out:
        raise ValueError("exemplar name is empty: give the object a name, e.g. 'my mug'")
    if len(out) > MAX_NAME_LENGTH:
        raise ValueError(f"exemplar name too long ({len(out)} characters, limit {MAX_NAME_LENGTH})")
    bad = [w for w in words if not _WORD.match(w)]
    if bad:
        raise ValueError(f"exemplar name {name!r}: words may hold letters, digits, '-', '_' and apostrophes only "
                         f"(not {bad[0]!r})")
    return out


class ExemplarBook:
    """Named exemplars, thread-safe (module docstring). `max_exemplars`: most names; `max_views`: most views per
    name."""

    def __init__(self, max_exemplars: int = 32, max_views: int = 8) -> None:
        if int(max_exemplars) < 1 or int(max_views) < 1:
            raise ValueError(f"max_exemplars and max_views must be >= 1, got {max_exemplars}, {max_views}")
        self.max_exemplars, self.max_views = int(max_exemplars), int(max_views)
        self._views: OrderedDict[str, list[Exemplar]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, name: str) -> bool:
        try:
            return normalise_name(name) in self._views
        except ValueError:
            return False

    def names(self) -> list[str]:
        """Names in teaching order."""
        with self._lock:
            return list(self._views)

    def views(self, name: str) -> list[Exemplar]:
        """The views of `name` (KeyError listing the known names when unknown)."""
        key = normalise_name(name)
        with self._lock:
            if key not in self._views:
                known = ", ".join(self._views) or "none"
                raise KeyError(f"no exemplar named '{key}' (known: {known}); teach it with add_exemplar")
            return list(self._views[key])

    def add(self, name: str, exemplar: Exemplar) -> int:
        """Teach `exemplar` under `name` (another view when the name exists); returns the name's view count.
        ValueError when the book is full (a new name beyond max_exemplars)."""
        key = normalise_name(name)
        exemplar.name = key
        with self._lock:
            if key not in self._views and len(self._views) >= self.max_exemplars:
                raise ValueError(f"too many exemplars: {len(self._views)} names, limit {self.max_exemplars} "
                                 "(remove one first; parameter limits.max_exemplars)")
            views = self._views.setdefault(key, [])
            views.append(exemplar)
            del views[:-self.max_views]
            return len(views)

    def remove(self, name: str = "") -> int:
        """Forget `name` ('' = every name); returns how many names were removed (KeyError for an unknown name)."""
        with self._lock:
            if not name:
                n = len(self._views)
                self._views.clear()
                return n
        self.views(name)  # raises for an unknown name
        with self._lock:
            self._views.pop(normalise_name(name), None)
            return 1

    def find(self, phrase: str) -> Optional[str]:
        """The name a request phrase asks for, or None: the phrase itself ("my mug"), else the phrase without a
        leading "my" / "our" when that was taught ("my kevin" -> "kevin")."""
        try:
            key = normalise_name(phrase)
        except ValueError:
            return None
        words = key.split()
        bare = " ".join(words[1:]) if len(words) > 1 and words[0] in ("my", "our") else None
        with self._lock:
            return key if key in self._views else bare if bare in self._views else None

    # ------------------------------------------------------------------------------------------ files
    def save(self, path: Union[str, os.PathLike], model: str = "") -> int:
        """Write every view to `path` (.npz, atomically); returns the number of views written."""
        with self._lock:
            views = [ex for vs in self._views.values() for ex in vs]
        path = Path(path).expanduser()
        if not views:
            raise ValueError("no exemplars to save (teach one with add_exemplar first)")
        meta = {"format": FORMAT_VERSION, "model": model, "query_dim": int(views[0].query.size),
                "class_dim": int(views[0].class_embed.size), "pooled_dim": int(views[0].pooled.size),
                "views": [{"name": ex.name, "source": ex.source} for ex in views]}
        arrays = {k: np.stack([ex.arrays()[k] for ex in views]).astype(np.float32)
                  for k in ("query", "class_embed", "pooled", "colour")}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), query_iou=np.array([ex.query_iou for ex in views],
                                                                                 np.float64),
                         area=np.array([ex.area for ex in views], np.int64), **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(views)

    def load(self, path: Union[str, os.PathLike], query_dim: int, class_dim: int, replace: bool = True) -> int:
        """Read a file written by `save` (replacing the book, or adding to it when `replace` is False); returns
        the number of views read. FileNotFoundError / ValueError (not an exemplar file, another model's sizes,
        too many names) leave the book unchanged."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"exemplar file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: np.asarray(z[k]) for k in ("query", "class_embed", "pooled", "colour", "query_iou",
                                                        "area")}
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not an exemplar file written by save_exemplars: {e}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: exemplar file format {meta.get('format')!r}, this version reads "
                             f"{FORMAT_VERSION}")
        if (meta.get("query_dim"), meta.get("class_dim")) != (query_dim, class_dim):
            raise ValueError(f"{path} was made by model '{meta.get('model')}' (query {meta.get('query_dim')}, class "
                             f"{meta.get('class_dim')} values); this model has {query_dim}, {class_dim}: teach the "
                             "exemplars again with this model")
        n = len(meta.get("views", []))
        want = {"query": (n, query_dim), "class_embed": (n, class_dim), "pooled": (n, meta.get("pooled_dim")),
                "colour": (n, len(BASIC_COLOUR_TERMS)), "query_iou": (n,), "area": (n,)}
        bad = [f"{k} {arrays[k].shape} (expected {shape})" for k, shape in want.items() if arrays[k].shape != shape]
        if bad:
            raise ValueError(f"{path}: arrays do not match its {n} views: " + ", ".join(bad))
        fresh = ExemplarBook(self.max_exemplars, self.max_views)
        if not replace:
            with self._lock:
                fresh._views = OrderedDict((k, list(v)) for k, v in self._views.items())
        for i, v in enumerate(meta["views"]):
            ex = Exemplar(name=v["name"], query=arrays["query"][i], class_embed=arrays["class_embed"][i],
                          pooled=arrays["pooled"][i], colour=arrays["colour"][i],
                          query_iou=float(arrays["query_iou"][i]), area=int(arrays["area"][i]),
                          source=str(v.get("source", "")))
            if not all(np.isfinite(a).all() for a in ex.arrays().values()):
                raise ValueError(f"{path}: exemplar '{v['name']}' holds values that are not finite")
            fresh.add(v["name"], ex)
        with self._lock:
            self._views = fresh._views
        return len(meta["views"])


__all__ = ["ExemplarBook", "normalise_name", "MAX_NAME_LENGTH"]
