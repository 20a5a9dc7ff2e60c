"""Tiled transforms (ldem.tiling) against the whole-image transforms they replace."""
import doctest
import math

import numpy as np
import pytest
import torch

from ldem import tiling
from ldem.transforms import GainedFactorizedCodec
from ldem.tiling import analysis_tiled, synthesis_tiled


@pytest.fixture(scope="module")
def net():
    """A small random codec whose latents span several integers and whose images fill 0..255."""
    torch.manual_seed(0)
    net = GainedFactorizedCodec(lambdas=[0.004, 0.03], N=16, M=24).eval()
    with torch.no_grad():
        net.log_gain.fill_(math.log(30.0))
        net.log_inv_gain.fill_(-math.log(30.0))
        net.g_s.net[-1].weight.mul_(8.0)
        net.g_s.net[-1].bias.fill_(0.5)
    return net


def _image(H, W, seed=1):
    g = torch.Generator().manual_seed(seed)
    # smooth structure plus noise, so the latent is not flat
    base = torch.rand(1, 3, H // 8 + 1, W // 8 + 1, generator=g)
    x = torch.nn.functional.interpolate(base, scale_factor=8, mode="bilinear", align_corners=False)[..., :H, :W]
    return (0.8 * x + 0.2 * torch.rand(1, 3, H, W, generator=g)).contiguous()


def _whole_analysis(net, x, level):
    with torch.inference_mode():
        return net.analysis(x, level)


def _whole_synthesis(net, y, level, H, W):
    """What ImageCodec.decompress_array does today."""
    with torch.inference_mode():
        x = net.synthesis(torch.as_tensor(y, dtype=torch.float32), level)[0, :, :H, :W]
        x = torch.nan_to_num(x, nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy())


# (H, W, tile): sizes that are not multiples of the tile, strips, tiles of 16 and 32, pairs
CASES = [(208, 336, 64), (48, 80, 32), (96, 96, 32), (400, 16, 32), (16, 400, 16), (32, 528, 48),
         (176, 144, (32, 64)), (64, 64, 16)]


@pytest.mark.parametrize("H,W,tile", CASES)
def test_analysis_matches_whole_image(net, H, W, tile):
    x = _image(H, W)
    ref = _whole_analysis(net, x, 1)
    y = analysis_tiled(net, x, 1, tile=tile)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    assert (y - ref).abs().max().item() < 1e-4
    agree = (y.round() == ref.round()).double().mean().item()
    assert agree >= 0.999, f"rounded latents agree on {agree:.6f}"
    assert ref.round().unique().numel() > 3  # the comparison is not trivial


@pytest.mark.parametrize("H,W,tile", CASES)
def test_synthesis_matches_whole_image(net, H, W, tile):
    y = _whole_analysis(net, _image(H, W, seed=2), 1).round()
    for oh, ow in [(H, W), (H - 5, W - 11 if W > 16 else W - 3)]:
        ref = _whole_synthesis(net, y, 1, oh, ow)
        out = synthesis_tiled(net, y, 1, tile=tile, out_hw=(oh, ow))
        assert out.shape == (oh, ow, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        d = np.abs(out.astype(np.int16) - ref)
        assert d.max() <= 1
        assert np.mean(d == 0) >= 0.999, f"identical on {np.mean(d == 0):.6f} of the pixels"
    assert len(np.unique(ref)) > 50  # the comparison is not trivial


def test_synthesis_default_size_and_numpy_latent(net):
    y = _whole_analysis(net, _image(80, 112), 0).round()
    a = synthesis_tiled(net, y, 0, tile=32)
    assert a.shape == (80, 112, 3)
    b = synthesis_tiled(net, y[0].numpy().astype(np.int32)[None], 0, tile=32)  # the decoder's int32 latent
    assert np.array_equal(a, b)


def test_synthesis_crop_far_inside_the_latent(net):
    """out_hw may leave whole latent rows and columns unused; only the tiles that reach
    the output run, and their halos still read the latents beyond it."""
    y = _whole_analysis(net, _image(160, 192), 1).round()
    calls = []
    out = synthesis_tiled(net, y, 1, tile=32, out_hw=(40, 70), progress=lambda d, t: calls.append((d, t)))
    d = np.abs(out.astype(np.int16) - _whole_synthesis(net, y, 1, 40, 70))
    assert d.max() <= 1 and np.mean(d == 0) >= 0.999
    assert calls[-1] == (6, 6)  # 2 × 3 tiles of the 10 × 12 latent


def test_one_tile_is_the_whole_image_path(net):
    """An image that fits in one tile gives exactly today's bits (one call, no halo)."""
    x = _image(64, 48)
    ref = _whole_analysis(net, x, 1)
    for tile in (64, (64, 48), 512):
        assert torch.equal(analysis_tiled(net, x, 1, tile=tile), ref)
    y = ref.round()
    assert np.array_equal(synthesis_tiled(net, y, 1, tile=64, out_hw=(61, 45)), _whole_synthesis(net, y, 1, 61, 45))
    assert np.array_equal(synthesis_tiled(net, y, 1), _whole_synthesis(net, y, 1, 64, 48))


def test_halo_is_needed(net, monkeypatch):
    """The derived halos are not just sufficient: a smaller one changes the result."""
    x = _image(128, 128)
    ref = _whole_analysis(net, x, 1)
    for small in [(16, 16), (32, 0)]:
        monkeypatch.setattr(tiling, "ANALYSIS_HALO", small)
        assert (analysis_tiled(net, x, 1, tile=32) - ref).abs().max().item() > 1e-2
    y = ref.round()
    want = _whole_synthesis(net, y, 1, 128, 128)
    for small in [(0, 2), (1, 1)]:
        monkeypatch.setattr(tiling, "SYNTHESIS_HALO", small)
        assert np.abs(synthesis_tiled(net, y, 1, tile=32).astype(np.int16) - want).max() > 1


def test_progress_counts(net):
    calls = []
    analysis_tiled(net, _image(48, 80), 0, tile=32, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]  # 2 × 3 tiles
    calls.clear()
    y = torch.zeros(1, 24, 3, 5)
    synthesis_tiled(net, y, 0, tile=32, out_hw=(33, 70), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]  # ceil(3/2) × ceil(5/2) tiles
    calls.clear()
    synthesis_tiled(net, y, 0, tile=32, out_hw=(33, 40), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]  # only the tiles that reach the output
    calls.clear()
    analysis_tiled(net, _image(48, 80), 0, tile=80, progress=lambda d, t: calls.append((d, t)))
    synthesis_tiled(net, y, 0, tile=80, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1), (1, 1)]  # one tile each


def test_argument_errors(net):
    x = _image(32, 32)
    y = torch.zeros(1, 24, 2, 2)
    for bad in (0, 8, 15, 24, 40, -16, (32,), (32, 24), (32, 32, 32)):
        with pytest.raises(ValueError, match="tile"):
            analysis_tiled(net, x, 0, tile=bad)
        with pytest.raises(ValueError, match="tile"):
            synthesis_tiled(net, y, 0, tile=bad)
    for bad in ("32", 32.0, True, None, (32, "32")):
        with pytest.raises(TypeError, match="tile"):
            analysis_tiled(net, x, 0, tile=bad)
        with pytest.raises(TypeError, match="tile"):
            synthesis_tiled(net, y, 0, tile=bad)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        analysis_tiled(net, x.numpy(), 0)
    with pytest.raises(TypeError, match="floating-point"):
        analysis_tiled(net, (x * 255).to(torch.uint8), 0)
    for bad in (x[0], torch.cat([x, x]), x[:, :2], x[..., :24], x[..., :0, :]):
        with pytest.raises(ValueError, match="x"):
            analysis_tiled(net, bad, 0)
    for fn, arg in ((analysis_tiled, x), (synthesis_tiled, y)):
        with pytest.raises(ValueError, match="level"):
            fn(net, arg, 2)
        with pytest.raises(TypeError, match="net must have"):
            fn(object(), arg, 0)
        with pytest.raises(TypeError, match="progress"):
            fn(net, arg, 0, progress=5)
    with pytest.raises(TypeError, match="y must be"):
        synthesis_tiled(net, y.tolist(), 0)
    with pytest.raises(TypeError, match="real numbers"):
        synthesis_tiled(net, y.bool(), 0)
    with pytest.raises(TypeError, match="real numbers"):
        synthesis_tiled(net, np.zeros((1, 24, 2, 2), complex), 0)
    for bad in (y[0], y[:, :, :0], torch.zeros(2, 24, 2, 2)):
        with pytest.raises(ValueError, match="y must have shape"):
            synthesis_tiled(net, bad, 0)
    for bad in ((0, 16), (16, 0), (33, 16), (16, 33)):
        with pytest.raises(ValueError, match="out_hw"):
            synthesis_tiled(net, y, 0, out_hw=bad)
    for bad in (32, (16,), (16.0, 16), ("a", "b"), (True, 16)):
        with pytest.raises(TypeError, match="out_hw"):
            synthesis_tiled(net, y, 0, out_hw=bad)


def test_latent_is_an_ordinary_tensor(net):
    """The latent can be rounded in place outside inference mode (one tile or several)."""
    x = _image(64, 96)
    for tile in (32, 512):
        y = analysis_tiled(net, x, 0, tile=tile)
        assert not y.is_inference() and not y.requires_grad
        y.round_()


def test_float64_input_is_accepted(net):
    x = _image(64, 96)
    ref = _whole_analysis(net, x, 0)
    assert (analysis_tiled(net, x.double(), 0, tile=32) - ref).abs().max().item() < 1e-4
    assert torch.equal(analysis_tiled(net, x.double(), 0), ref)


def test_doctests():
    result = doctest.testmod(tiling, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
