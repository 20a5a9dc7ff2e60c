"""The optional dependencies of the ``codec`` extra (torch, Pillow, tqdm), imported in one place.

The entropy coder needs numpy only. The image codec, its transforms, training and
evaluation need the ``codec`` extra; a function that needs it imports its modules with
:func:`require`, which turns a missing one into one :class:`MissingExtraError` naming the
extra and what to install.

>>> import math
>>> require("this example", "math") is math
True
"""
from __future__ import annotations

import importlib

__all__ = ["CODEC_EXTRA", "MissingExtraError", "require"]

#: Modules of the ``codec`` extra and the distributions that provide them.
CODEC_EXTRA = {"torch": "torch", "PIL": "pillow", "tqdm": "tqdm"}


class MissingExtraError(ImportError):
    """A dependency of the ``codec`` extra is not installed. The message says what needs
    it and what to install; ``missing`` lists the distributions."""

    def __init__(self, what: str, missing):
        self.missing = list(missing)
        super().__init__(f"{what} needs the codec extra: pip install 'ldem[codec]' "
                         f"(missing: {', '.join(self.missing)})", name=None)


def require(what: str, *modules: str):
    """Imports ``modules`` (of torch, PIL or tqdm, or their submodules) for ``what`` (the
    name a user called, e.g. ``"ldem.ImageCodec"``): the module, or a tuple of them for
    several. Raises :class:`MissingExtraError` listing every one that is missing.

    >>> try:
    ...     require("ldem.ImageCodec", "math", "no_such_module_xyz")
    ... except MissingExtraError as e:
    ...     print(e)
    ldem.ImageCodec needs the codec extra: pip install 'ldem[codec]' (missing: no_such_module_xyz)
    """
    found, missing = [], []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ImportError as e:
            top = name.split(".")[0]
            if e.name is not None and e.name.split(".")[0] != top:
                raise  # the module is there but one of its own imports failed: not ours to rename
            dist = CODEC_EXTRA.get(top, top)
            if dist not in missing:
                missing.append(dist)
    if missing:
        raise MissingExtraError(what, missing)
    return found[0] if len(found) == 1 else tuple(found)
