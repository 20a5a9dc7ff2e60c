"""ldem.transforms: GDN, the transforms, the factorized density and the gained codec model."""
import math

import pytest

torch = pytest.importorskip("torch")
from ldem.transforms import GDN, FactorizedDensity, GainedFactorizedCodec, quantize_ste, rd_loss  # noqa: E402


def test_gdn_and_inverse():
    x = torch.randn(2, 8, 5, 7)
    g, ig = GDN(8), GDN(8, inverse=True)
    y = g(x)
    assert y.shape == x.shape
    # at initialisation: y = x / sqrt(1 + 0.1 x^2), IGDN multiplies by the same factor
    assert torch.allclose(y, x / torch.sqrt(1 + 0.1 * x * x), atol=1e-5)
    assert torch.allclose(ig(x), x * torch.sqrt(1 + 0.1 * x * x), atol=1e-5)


def test_gdn_parameters_stay_valid_under_gradient():
    g = GDN(4)
    with torch.no_grad():
        g.beta.fill_(-1.0)  # below the bound: the forward pass clamps it
    y = g(torch.randn(1, 4, 3, 3))
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(g.beta.grad).all()


def test_density_is_a_distribution():
    d = FactorizedDensity(5)
    p = d.pmf(-200, 200)
    assert p.shape == (5, 400)
    assert torch.all(p > 0) and torch.all(p <= 1)
    assert torch.allclose(p.sum(1), torch.ones(5, dtype=p.dtype), atol=1e-4)
    lik = d.likelihood(torch.zeros(2, 5, 3, 3))
    assert lik.shape == (2, 5, 3, 3) and torch.all(lik > 0)


def test_quantize_ste():
    y = torch.tensor([0.4, 0.6, -1.5], requires_grad=True)
    q = quantize_ste(y)
    assert q.tolist() == [0.0, 1.0, -2.0]
    q.sum().backward()
    assert y.grad.tolist() == [1.0, 1.0, 1.0]


def test_codec_forward_shapes_and_levels():
    net = GainedFactorizedCodec([0.001, 0.01, 0.1], N=8, M=12)
    x = torch.rand(3, 3, 32, 48)
    out = net(x, torch.tensor([0, 2, 1]))
    assert out["x_hat"].shape == x.shape and out["likelihoods"].shape == (3, 12, 2, 3)
    loss, bpp, mse = rd_loss(x, out, torch.tensor([0.001, 0.1, 0.01]))
    assert loss.ndim == 0 and bpp > 0 and mse > 0
    loss.backward()
    assert all(p.grad is not None for p in net.g_a.parameters())
    # a higher level has a larger gain at initialisation (finer quantization)
    y0, y2 = net.analysis(x, 0), net.analysis(x, 2)
    assert torch.allclose(y2 / y0, torch.full_like(y0, math.sqrt(100)), rtol=1e-4)
    with pytest.raises(ValueError, match="level"):
        net(x, 3)
    with pytest.raises(ValueError, match="level"):
        net(x, torch.tensor([0, 1]))


def test_config_round_trip():
    net = GainedFactorizedCodec([0.01, 0.02], N=8, M=12)
    again = GainedFactorizedCodec.from_config(net.config())
    assert again.config() == net.config()
    with pytest.raises(ValueError, match="architecture"):
        GainedFactorizedCodec.from_config({"arch": "other"})


def test_transform_shapes_match_the_net():
    from ldem.transforms import transform_shapes
    net = GainedFactorizedCodec([0.01, 0.02, 0.05], N=8, M=12)
    want = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith("densities.")}
    assert transform_shapes(8, 12, 3) == want


@pytest.mark.parametrize("cfg", [
    {"arch": "gained-factorized-v1", "N": 10**9, "M": 12, "lambdas": [0.01]},
    {"arch": "gained-factorized-v1", "N": -8, "M": 12, "lambdas": [0.01]},
    {"arch": "gained-factorized-v1", "N": 8, "M": 0, "lambdas": [0.01]},
    {"arch": "gained-factorized-v1", "N": 8, "M": 12, "lambdas": []},
    {"arch": "gained-factorized-v1", "N": 8, "M": 12, "lambdas": [float("nan")]},
    {"arch": "gained-factorized-v1", "N": 8, "M": 12},
    ["gained-factorized-v1"],
])
def test_from_config_rejects_bad_configs_with_value_error(cfg):
    with pytest.raises(ValueError):
        GainedFactorizedCodec.from_config(cfg)
