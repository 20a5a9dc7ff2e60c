"""Runs the docstring examples of the public ldem modules as tests."""
import doctest
import importlib

import pytest

MODULES = ["ldem", "ldem.coder", "ldem.dictionary", "ldem.errors", "ldem.local", "ldem.bitio", "ldem.codec",
           "ldem.transforms", "ldem.reference", "ldem.evaluate", "ldem.eval_results",
           "ldem.eval_figures", "ldem.files", "ldem.model_file", "ldem.tiling", "ldem.container", "ldem.images",
           "ldem.metrics", "ldem._optional", "ldem.testing", "ldem.block_transform"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
    if name != "ldem.errors":  # DecodeError's example is collected under the package name "ldem"
        assert result.attempted > 0, f"{name} has no doctest examples"


def test_public_api_has_examples():
    finder = doctest.DocTestFinder()
    documented = {t.name.rsplit(".", 1)[-1] if t.name != "ldem" else "ldem"
                  for m in MODULES for t in finder.find(importlib.import_module(m)) if t.examples}
    expected = {"ldem", "DecodeError", "Dictionary", "from_pmfs", "from_frequencies", "from_bytes",
                "concat", "encode", "decode", "block_costs", "block_grid", "build_info", "cuda_available",
                "LocalEntropyCoder", "describe", "learn_dictionary", "fit_global_models", "ImageCodec",
                "read_header", "image_to_array", "psnr", "bpp_at_psnr"}
    assert expected <= documented, f"no runnable example: {sorted(expected - documented)}"
