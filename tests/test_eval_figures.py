"""ldem.eval_figures: the pictures of a tiny `ldem eval` run, remade from its saved files."""
import doctest

import pytest

from ldem import eval_figures as ef


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_figures_from_saved_results(eval_run):
    for p in ("rd_psnr.png", "block_maps.png"):
        (eval_run / p).unlink()
    paths = ef.make_figures(eval_run)
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------------------------------
# Docstring examples
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", [ef])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
