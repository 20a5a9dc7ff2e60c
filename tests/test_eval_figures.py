"""ldem.eval_figures: the pictures of a tiny `ldem eval` run, remade from its saved files."""
import doctest

import pytest

from ldem import eval_figures as ef
from ldem import evaluate as ev


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small tensors: one thread is fastest and keeps the run from competing for cores."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image
    import ldem
    folder = tmp_path_factory.mktemp("images")
    with Image.open(ldem.sample_image_path()) as im:
        im.convert("RGB").crop((0, 0, 64, 48)).save(folder / "a.png")
        im.convert("RGB").crop((200, 120, 264, 168)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def run(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    status = ev.main([str(image_folder), "--qualities", "1", "2", "--out", str(out),
                      "--reference-qualities", "30", "80", "--quiet"])
    assert status == 0
    return out


def test_figures_from_saved_results(run):
    for p in ("rd_psnr.png", "block_maps.png"):
        (run / p).unlink()
    paths = ef.make_figures(run)
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------------------------------
# Docstring examples
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", [ef])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
