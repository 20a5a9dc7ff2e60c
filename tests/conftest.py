"""Tests import the installed ldem (with its compiled core), never the source tree,
even under ``python -m pytest`` (which puts the working directory on sys.path)."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]

import pytest  # noqa: E402


@pytest.fixture()
def peak_memory():
    """peak_memory(fn) runs fn() and returns the peak bytes Python allocators held
    (tracemalloc: numpy buffers included)."""
    import tracemalloc

    def measure(fn):
        tracemalloc.start()
        try:
            fn()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return peak
    return measure


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread is fastest and keeps a test from competing for cores."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def eval_images(tmp_path_factory):
    """A folder of two small crops of the bundled sample and one file that is not an image."""
    from PIL import Image
    import ldem
    folder = tmp_path_factory.mktemp("images")
    with Image.open(ldem.sample_image_path()) as im:
        im.convert("RGB").crop((0, 0, 64, 48)).save(folder / "a.png")
        im.convert("RGB").crop((200, 120, 264, 168)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def eval_run(eval_images, tmp_path_factory):
    """The output folder of one tiny `ldem eval` run over ``eval_images`` (qualities 1 and 2)."""
    import torch
    from ldem import evaluate
    out = tmp_path_factory.mktemp("out")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        status = evaluate.main([str(eval_images), "--qualities", "1", "2", "--out", str(out),
                                "--reference-qualities", "30", "80", "--quiet"])
    finally:
        torch.set_num_threads(before)
    assert status == 0
    return out
