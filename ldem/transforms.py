"""Learned transforms (PyTorch, the ``codec`` extra): GDN, Ballé-2017 analysis/synthesis,
factorized densities. (In the rest of ldem a "model" is a probability table.)

The codec model is :class:`GainedFactorizedCodec`: one analysis/synthesis pair shared by
all quality levels, a learned per-channel gain and inverse gain per level (the latent is
``y = g_a(x) * gain[q]``, quantized to integers, and ``x_hat = g_s(y_hat * inv_gain[q])``),
and one factorized density per level. One training run thus yields every level.

>>> import torch
>>> from ldem.transforms import GainedFactorizedCodec
>>> net = GainedFactorizedCodec(lambdas=[0.004, 0.03], N=16, M=24)
>>> out = net(torch.rand(1, 3, 64, 64), level=1)
>>> tuple(out["x_hat"].shape), tuple(out["likelihoods"].shape)
((1, 3, 64, 64), (1, 24, 4, 4))
"""
from __future__ import annotations

import math
from typing import Sequence

from ldem._optional import require

torch, nn, F = require("ldem.transforms", "torch", "torch.nn", "torch.nn.functional")

from ldem.model_file import ARCH, MAX_CHANNELS, MAX_LEVELS, check_config, transform_shapes  # noqa: E402

__all__ = ["GDN", "AnalysisTransform", "SynthesisTransform", "FactorizedDensity",
           "GainedFactorizedCodec", "quantize_ste", "widen_transforms", "LIKELIHOOD_FLOOR",
           "ARCH", "MAX_CHANNELS", "MAX_LEVELS", "check_config", "transform_shapes"]


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when it pushes x back above the bound."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ((x >= ctx.bound) | (g < 0)).to(g.dtype), None


def _lower_bound(x, bound: float):
    return _LowerBound.apply(x, bound)


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016); ``inverse=True`` gives IGDN.

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (IGDN multiplies). ``beta`` and
    ``gamma`` are stored as square roots with a small pedestal, as in the paper.
    """

    _pedestal = 2.0 ** -36

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        p = self._pedestal
        self._beta_bound = math.sqrt(beta_min + p)
        self._gamma_bound = math.sqrt(p)
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + p))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + p))

    def forward(self, x):
        p = self._pedestal
        beta = _lower_bound(self.beta, self._beta_bound) ** 2 - p
        gamma = _lower_bound(self.gamma, self._gamma_bound) ** 2 - p
        C = x.shape[1]
        norm = F.conv2d(x * x, gamma.view(C, C, 1, 1), beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def _conv(cin, cout):
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def _deconv(cin, cout):
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class AnalysisTransform(nn.Module):
    """x [B,3,H,W] in [0,1] -> y [B,M,H/16,W/16]: four stride-2 5×5 convolutions with GDN."""

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.net = nn.Sequential(_conv(3, N), GDN(N), _conv(N, N), GDN(N), _conv(N, N), GDN(N), _conv(N, M))

    def forward(self, x):
        return self.net(x)


class SynthesisTransform(nn.Module):
    """y_hat [B,M,h,w] -> x_hat [B,3,16h,16w]: four stride-2 transposed convolutions with IGDN."""

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.net = nn.Sequential(_deconv(M, N), GDN(N, inverse=True), _deconv(N, N), GDN(N, inverse=True),
                                 _deconv(N, N), GDN(N, inverse=True), _deconv(N, 3))

    def forward(self, y):
        return self.net(y)


LIKELIHOOD_FLOOR = 1e-9  # smallest likelihood a value is charged for in training (≈ 30 bits)


class FactorizedDensity(nn.Module):
    """Learned per-channel density (Ballé et al. 2018, appendix 6.1).

    A monotone per-channel MLP gives the logit of the CDF; the likelihood of an integer
    bin is ``c(y + 1/2) - c(y - 1/2)``. :meth:`pmf` evaluates it on integer ranges to
    build the integer tables the coder ships.
    """

    def __init__(self, channels: int, filters: Sequence[int] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, v):
        """v [C, 1, n] -> logit of the CDF at v, [C, 1, n]."""
        for i, m in enumerate(self.matrices):
            v = torch.matmul(F.softplus(m), v) + self.biases[i]
            if i < len(self.factors):
                v = v + torch.tanh(self.factors[i]) * torch.tanh(v)
        return v

    def likelihood(self, y):
        """Probability of the unit bin around each value of y [B, C, H, W]."""
        B, C, H, W = y.shape
        v = y.transpose(0, 1).reshape(C, 1, -1)
        lower = self.logits_cdf(v - 0.5)
        upper = self.logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail that keeps precision
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.reshape(C, B, H, W).transpose(0, 1)

    def bits(self, y):
        """Bits of each value of y [B, C, H, W]: −log2 of its likelihood, floored at
        :data:`LIKELIHOOD_FLOOR` as in training."""
        return -torch.log2(self.likelihood(y).clamp_min(LIKELIHOOD_FLOOR))

    @torch.no_grad()
    def pmf(self, lo: int, hi: int):
        """Masses of the integers lo..hi-1 per channel, float64 [C, hi-lo]."""
        v = torch.arange(lo, hi, dtype=torch.float32).view(1, 1, 1, -1).expand(1, self.channels, 1, -1)
        return self.likelihood(v).reshape(self.channels, -1).double()


def quantize_ste(y):
    """Rounds in the forward pass, identity gradient in the backward pass."""
    return y + (torch.round(y) - y).detach()


class GainedFactorizedCodec(nn.Module):
    """Ballé-2017 transforms with per-level gains and densities (one model, many qualities).

    ``lambdas[q]`` is the rate–distortion weight of level ``q`` (loss = bpp + λ·255²·MSE).
    Training uses additive uniform noise for the rate term and straight-through rounding
    for the synthesis input.
    """

    def __init__(self, lambdas: Sequence[float], N: int = 128, M: int = 192):
        super().__init__()
        self.lambdas = [float(v) for v in lambdas]
        self.N, self.M = int(N), int(M)
        L = len(self.lambdas)
        self.g_a = AnalysisTransform(N, M)
        self.g_s = SynthesisTransform(N, M)
        # Quantization step ~ λ^-1/2 under MSE: start the gains on that ladder.
        top = max(self.lambdas)
        init = torch.tensor([0.5 * math.log(v / top) for v in self.lambdas]).view(L, 1).repeat(1, M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())
        self.densities = nn.ModuleList(FactorizedDensity(M) for _ in range(L))

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    def _check_level(self, level: int):
        if not isinstance(level, int) or not 0 <= level < self.num_levels:
            raise ValueError(f"level must be an int in [0, {self.num_levels}), got {level!r}")

    def analysis(self, x, level: int):
        """x [B,3,H,W] in [0,1] (H, W multiples of 16) -> continuous latent, scaled for ``level``."""
        self._check_level(level)
        return self.g_a(x) * torch.exp(self.log_gain[level]).view(1, -1, 1, 1)

    def synthesis(self, y_hat, level: int):
        """Integer-valued latent (float tensor) -> image in roughly [0,1]."""
        self._check_level(level)
        return self.g_s(y_hat * torch.exp(self.log_inv_gain[level]).view(1, -1, 1, 1))

    def forward(self, x, level):
        """Training pass. ``level`` is an int or a LongTensor [B] (one level per sample)."""
        B = x.shape[0]
        if isinstance(level, int):
            self._check_level(level)
            levels = torch.full((B,), level, dtype=torch.long, device=x.device)
        else:
            levels = level.to(device=x.device, dtype=torch.long)
            if levels.shape != (B,) or levels.min() < 0 or levels.max() >= self.num_levels:
                raise ValueError(f"level must be an int or B={B} ints in [0, {self.num_levels})")
        gain = torch.exp(self.log_gain)[levels].view(B, -1, 1, 1)
        inv_gain = torch.exp(self.log_inv_gain)[levels].view(B, -1, 1, 1)
        y = self.g_a(x) * gain
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        lik = torch.zeros_like(y)
        for l in torch.unique(levels).tolist():
            idx = (levels == l).nonzero().squeeze(1)
            lik = lik.index_put((idx,), self.densities[l].likelihood(noisy[idx]))
        x_hat = self.g_s(quantize_ste(y) * inv_gain)
        return {"x_hat": x_hat, "likelihoods": lik.clamp_min(LIKELIHOOD_FLOOR), "y": y, "levels": levels}

    def entropy_parameters(self):
        """Densities and gains: few, well-conditioned parameters that train at a higher rate."""
        return [self.log_gain, self.log_inv_gain, *self.densities.parameters()]

    def config(self) -> dict:
        return {"arch": ARCH, "N": self.N, "M": self.M, "lambdas": self.lambdas}

    @classmethod
    def from_config(cls, cfg: dict) -> "GainedFactorizedCodec":
        """The net of a :meth:`config` dict, checked first by :func:`check_config` (``ValueError``)."""
        cfg = check_config(cfg)
        return cls(cfg["lambdas"], N=cfg["N"], M=cfg["M"])


def widen_transforms(narrow: dict, wide: dict) -> dict:
    """Transform weights of ``narrow`` (hidden width N) placed into ``wide`` (width N2 ≥ N).

    ``narrow`` and ``wide`` are state dicts of :class:`GainedFactorizedCodec` with the same
    M; ``wide`` supplies the fresh weights of the new channels. The result computes the
    same function as ``narrow``: each new hidden channel keeps its fresh incoming weights
    (halved) but gets zero outgoing weights and zero GDN cross terms, so training can grow
    it from there. Only ``g_a.*`` and ``g_s.*`` entries are returned.

    >>> import torch
    >>> a, b = GainedFactorizedCodec([0.01], N=8, M=12), GainedFactorizedCodec([0.01], N=16, M=12)
    >>> _ = b.load_state_dict(widen_transforms(a.state_dict(), b.state_dict()), strict=False)
    >>> x = torch.rand(1, 3, 32, 32)
    >>> torch.allclose(a.synthesis(a.analysis(x, 0), 0), b.synthesis(b.analysis(x, 0), 0))
    True
    """
    pedestal = GDN._pedestal
    out = {}
    for k, fresh in wide.items():
        if not k.startswith(("g_a.", "g_s.")):
            continue
        old = narrow[k]
        if old.shape == fresh.shape:
            out[k] = old.clone()
            continue
        if old.dim() != fresh.dim() or any(a > b for a, b in zip(old.shape, fresh.shape)):
            raise ValueError(f"cannot widen {k} from {tuple(old.shape)} to {tuple(fresh.shape)}")
        w = fresh.clone()
        if k.endswith("gamma"):  # square-root parameters: new diagonal at the default, no cross terms
            n = old.shape[0]
            w.fill_(math.sqrt(pedestal))
            new = torch.arange(n, w.shape[0])
            w[new, new] = math.sqrt(0.1 + pedestal)
            w[:n, :n] = old
        elif old.dim() == 1:  # biases, GDN beta
            w[:old.shape[0]] = old
        else:  # conv [out, in, k, k]; transposed conv (synthesis) [in, out, k, k]
            i_out, i_in = (1, 0) if k.startswith("g_s.") else (0, 1)
            n_out, n_in = old.shape[i_out], old.shape[i_in]
            idx = [slice(None)] * 4
            idx[i_out], idx[i_in] = slice(n_out, None), slice(0, n_in)
            w[tuple(idx)] *= 0.5  # fresh incoming weights of the new channels
            idx[i_out], idx[i_in] = slice(None), slice(n_in, None)
            w[tuple(idx)] = 0  # outgoing weights of the new channels
            idx[i_out], idx[i_in] = slice(0, n_out), slice(0, n_in)
            w[tuple(idx)] = old
        out[k] = w
    return out


def rd_loss(x, out, lam, msssim: bool = False):
    """Rate–distortion loss, averaged over the batch: bpp + λ·255²·MSE (or λ·(1 − MS-SSIM)).

    ``lam`` is a float or a tensor [B] (one λ per sample). Returns (loss, bpp, mse) with
    bpp and mse as batch means.
    """
    B, _, H, W = x.shape
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device).expand(B)
    bpp = torch.log2(out["likelihoods"]).sum(dim=(1, 2, 3)).neg() / (H * W)
    mse = (out["x_hat"] - x).pow(2).mean(dim=(1, 2, 3))
    if msssim:
        from pytorch_msssim import ms_ssim
        dist = 1.0 - ms_ssim(out["x_hat"].clamp(0, 1), x, data_range=1.0, size_average=False)
        return (bpp + lam * dist).mean(), bpp.mean(), mse.mean()
    return (bpp + lam * 255.0 ** 2 * mse).mean(), bpp.mean(), mse.mean()
