"""ldem.local.learn: fit_global_models and learn_dictionary."""
import numpy as np
import pytest

import ldem


def test_learn_dictionary_is_deterministic_and_smoothed():
    rng = np.random.default_rng(0)
    ys = [rng.laplace(0, s, (8, 32, 32)).round().astype(np.int32) for s in (0.2, 1.0, 5.0)]
    a = ldem.learn_dictionary(ys, 6, block=(8, 8), seed=3, progress=False)
    b = ldem.learn_dictionary(ys, 6, block=(8, 8), seed=3, progress=False)
    assert a == b
    assert 1 <= a.num_models <= 6
    # Unseen values stay affordable: every model codes any int32 in bounded bits.
    for k in range(a.num_models):
        costs = a.costs(k)
        assert np.all(np.isfinite(costs)) and costs.max() <= 40
    # The learned models fit the data better than a single pooled model.
    pooled = ldem.learn_dictionary(ys, 1, block=(8, 8), seed=3, progress=False)
    y = np.concatenate(ys)
    ca = ldem.block_costs(y, a, block=(8, 8)).min(axis=-1).sum()
    cp = ldem.block_costs(y, pooled, block=(8, 8)).min(axis=-1).sum()
    assert ca < 0.9 * cp


def test_learn_dictionary_with_global_models_complements_them():
    rng = np.random.default_rng(1)
    ys = [rng.laplace(0, 2, (4, 32, 32)).round().astype(np.int32) for _ in range(2)]
    for y in ys:
        y[:, :16] = 0
    g = ldem.fit_global_models(ys)
    d = ldem.learn_dictionary(ys, 4, block=(16, 16), global_models=g, progress=False)
    coder = ldem.LocalEntropyCoder(g, d)
    y = ys[0]
    assert len(coder.encode(y, mode="static")) < len(coder.encode(y, mode="global"))


def test_fit_global_models_covers_each_channel():
    rng = np.random.default_rng(2)
    y = np.stack([rng.laplace(0, s, (32, 32)).round() for s in (0.5, 3, 9)]).astype(np.int32)
    g = ldem.fit_global_models([y])
    assert g.num_models == 3
    lo0, hi0 = g.support(0)
    lo2, hi2 = g.support(2)
    assert hi2 - lo2 > hi0 - lo0
    assert lo2 <= y[2].min() and hi2 > y[2].max()
    with pytest.raises(TypeError):
        ldem.fit_global_models([y.astype(np.float32)])
    with pytest.raises(ValueError):
        ldem.fit_global_models([])


def test_module_examples():
    import doctest

    import ldem.local.learn as module
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
