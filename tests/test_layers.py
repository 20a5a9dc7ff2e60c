"""The package's layers: no module imports one from a layer above its own.

From the bottom up: the foundations (errors, files, the compiled core, optional imports),
the coder API (numpy only), local entropy models, the coder of CompressAI models, the image
codec's parts (container, model file, images, transforms and the block transform, tiling,
metrics), the codec, the tools built on it (training, export, evaluation), and the command
line. Imports inside functions count too: a lazy import that runs back up is still a
dependency on the layer above.
"""
import ast
from pathlib import Path

import pytest

import ldem

PACKAGE = Path(ldem.__file__).resolve().parent

LAYERS = [
    {"ldem._version", "ldem._native", "ldem._core", "ldem._optional", "ldem.errors", "ldem.files", "ldem.bitio"},
    {"ldem.dictionary", "ldem._args", "ldem.coder", "ldem.cuda"},
    {"ldem.local", "ldem.local.stream", "ldem.local.search", "ldem.local.learn", "ldem.local.quadtree"},
    {"ldem.compressai"},
    {"ldem.container", "ldem.images", "ldem.metrics", "ldem.model_file", "ldem.transforms", "ldem.tiling",
     "ldem.testing", "ldem.reference", "ldem.block_transform"},
    {"ldem.codec"},
    {"ldem.train", "ldem.export", "ldem.evaluate", "ldem.eval_results", "ldem.eval_figures"},
    {"ldem.cli"},
    {"ldem"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ldem_imports(path: Path) -> set:
    """Every ldem module that ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ldem"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "ldem":
            for a in node.names:  # `from ldem import _core` names a module, `from ldem import encode` a name
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in RANK else node.module)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unplaced = [module_name(p) for p in MODULES if module_name(p) not in RANK]
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_import_runs_back_up(path):
    me = module_name(path)
    above = {m for m in ldem_imports(path) if RANK.get(m, len(LAYERS)) > RANK[me]}
    assert not above, f"{me} (layer {RANK[me]}) imports from higher layers: {sorted(above)}"


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ldem.codec import ImageCodec\n    import ldem.cli\n")
    assert ldem_imports(bad) == {"ldem.codec", "ldem.cli"}
