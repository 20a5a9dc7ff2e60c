"""Model files written by ``ldem export``: transforms, integer tables and coder settings per quality.

>>> from ldem.model_file import ModelBundle, pretrained_path
>>> bundle = ModelBundle(pretrained_path())
>>> bundle.num_qualities >= 1
True
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np

from ldem.dictionary import Dictionary

__all__ = ["ModelBundle", "MODEL_FILE_FORMAT", "pretrained_path"]

MODEL_FILE_FORMAT = 2  # written by ldem export; format 1 (one set of transforms) is still read


def pretrained_path() -> Path:
    """Path of the model file shipped in the package."""
    return Path(str(resources.files("ldem") / "pretrained" / "ldem-gf.npz"))


class ModelBundle:
    """A loaded model file: one or more sets of transforms, and per quality the integer
    tables, the coder settings and which transforms (and which of their trained levels)
    serve it.

    A file may hold several sets of transforms so that, for example, the high qualities
    come from a network trained for high rates. Format 2 stores set ``t`` as
    ``param{t}/<name>`` with its config in ``meta["transforms"][t]``; format 1 (one set,
    ``param/<name>`` and ``meta["config"]``) is read as a single set.
    """

    def __init__(self, path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no model file at {path}")
        raw = path.read_bytes()
        self.model_id = hashlib.blake2b(raw, digest_size=8).digest()
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(bytes(arrays.pop("meta.json")).decode())
        except (ValueError, KeyError, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not an ldem model file: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") not in (1, MODEL_FILE_FORMAT):
            raise ValueError(f"{path}: unsupported model file format "
                             f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
        self.path = path
        self.meta = meta
        try:
            if meta["format"] == 1:
                self.configs = [meta["config"]]
                self.states = [{k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}]
            else:
                self.configs = list(meta["transforms"])
                self.states = []
                for t in range(len(self.configs)):
                    prefix = f"param{t}/"
                    self.states.append({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
            self.levels = meta["levels"]  # one dict per quality, smallest files first
            if not self.configs or not self.levels:
                raise ValueError("no transforms or no levels")
            self.tables = {}
            for q in range(1, len(self.levels) + 1):
                t, l = self.level_of(q)
                if not 0 <= t < len(self.configs) or not 0 <= l < len(self.configs[t]["lambdas"]):
                    raise ValueError(f"quality {q} names transforms {t} level {l}, which the file lacks")
                g = Dictionary.from_bytes(arrays[f"level{q}/global"].tobytes())
                s = arrays.get(f"level{q}/static")
                self.tables[q] = (g, Dictionary.from_bytes(s.tobytes()) if s is not None else None)
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{path} is not a valid ldem model file: missing or malformed {e}") from None
        except ValueError as e:
            raise ValueError(f"{path} is not a valid ldem model file: {e}") from None
        self._nets = {}

    @property
    def config(self) -> dict:
        """Config of the first set of transforms (see :attr:`configs` for all)."""
        return self.configs[0]

    @property
    def num_qualities(self) -> int:
        return len(self.levels)

    def level_of(self, quality: int) -> tuple:
        """(index of the transforms, trained level of those transforms) behind ``quality``."""
        lv = self.levels[quality - 1]
        return int(lv.get("transforms", 0)), int(lv.get("level", quality - 1))

    def net(self, transforms: int = 0):
        """The PyTorch transforms number ``transforms`` in float32, in eval mode (built on first use)."""
        if transforms not in self._nets:
            import torch
            from ldem.models import GainedFactorizedCodec
            net = GainedFactorizedCodec.from_config(self.configs[transforms])
            state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in self.states[transforms].items()}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("densities.")]  # tables replace them
            if missing or unexpected:
                raise ValueError(f"{self.path}: weights do not match the architecture "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            self._nets[transforms] = net.eval()
        return self._nets[transforms]


@functools.lru_cache(maxsize=4)
def _bundle(path: str) -> ModelBundle:
    return ModelBundle(path)
