"""ldem: image-dependent local entropy models for learned image compression.

>>> import numpy as np, ldem
>>> d = ldem.Dictionary.from_pmfs([[0.2, 0.6, 0.2]], offsets=[-1])
>>> y = np.random.default_rng(0).integers(-1, 2, size=(1, 8, 8), dtype=np.int32)
>>> data = ldem.encode(y, np.zeros((1, 1, 1), np.int32), d, block=(8, 8))
>>> bool((ldem.decode(data, np.zeros((1, 1, 1), np.int32), d, y.shape, block=(8, 8)) == y).all())
True
"""
from ldem._version import __version__
from ldem.errors import DecodeError
from ldem.dictionary import Dictionary
from ldem.coder import (block_costs, block_grid, build_info, cuda_available, decode, decode_batch, encode,
                        encode_batch)
from ldem.local import (LocalEntropyCoder, fit_context_models, fit_global_models, learn_context_dictionary,
                        learn_dictionary)

# The image codec needs the codec extra (torch, Pillow): imported on first use, so that
# import ldem and the coder above need numpy alone.
_LAZY = {"ImageCodec": "ldem.codec", "sample_image_path": "ldem.images"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ldem' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__", "DecodeError", "Dictionary",
    "encode", "decode", "encode_batch", "decode_batch", "block_costs", "block_grid", "build_info", "cuda_available",
    "LocalEntropyCoder", "learn_dictionary", "fit_global_models", "fit_context_models", "learn_context_dictionary", "ImageCodec", "sample_image_path",
]
