"""ldem.compressai against real CompressAI models: identical reconstructions, every thread
count, batches, damaged strings and hostile arguments. Skipped when CompressAI is missing."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from ldem_bench.compressai_env import import_compressai  # noqa: E402

try:
    compressai = import_compressai()
except ImportError as e:
    pytest.skip(f"CompressAI is not installed ({e})", allow_module_level=True)

import ldem  # noqa: E402
import ldem.compressai  # noqa: E402
from compressai import zoo  # noqa: E402
from compressai.entropy_models import EntropyBottleneck, GaussianConditional, GaussianMixtureConditional  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean"]


def sample(height=128, width=192, top=0, left=0):
    """A crop of the bundled sample photo as a float tensor [1, 3, H, W] in [0, 1]."""
    from PIL import Image
    with Image.open(ldem.sample_image_path()) as im:
        rgb = np.asarray(im.convert("RGB"))[top:top + height, left:left + width]
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255


def make(name, quality=1):
    torch.manual_seed(0)
    model = zoo.image_models[name](quality=quality, pretrained=False).eval()
    model.update()
    return model


def train(model, steps=30, lmbda=0.01, crop=64, batch=2):
    """A few Adam steps of the rate-distortion loss on random crops of the sample, so that
    the latents and the bottleneck's tables are those of a (barely) trained model."""
    image = sample(256, 384)[0]
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        tops = torch.randint(0, image.shape[1] - crop + 1, (batch,), generator=g).tolist()
        lefts = torch.randint(0, image.shape[2] - crop + 1, (batch,), generator=g).tolist()
        x = torch.stack([image[:, t:t + crop, s:s + crop] for t, s in zip(tops, lefts)])
        out = model(x)
        bits = sum(-torch.log2(p).sum() for p in out["likelihoods"].values())
        loss = lmbda * 255**2 * torch.mean((out["x_hat"] - x) ** 2) + bits / x[:, 0].numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.update(force=True, update_quantiles=True)
    return model


def round_trip(model, x):
    with torch.no_grad():
        out = model.compress(x)
        return out, model.decompress(out["strings"], out["shape"])["x_hat"]


def total_bytes(out):
    return sum(len(s) for strings in out["strings"] for s in strings)


def num_streams(out):
    return sum(len(strings) for strings in out["strings"])


def codings(model):
    """The ldem coding patch() installed on each entropy module, by module name."""
    return {name: m.compress.__self__ for name, m in model.named_modules()
            if isinstance(m, (EntropyBottleneck, GaussianConditional))}


@pytest.fixture(scope="module")
def trained():
    return train(make("bmshj2018-factorized"))


# -- identical reconstructions ---------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_reconstruction_is_compressai_s(name):
    model = make(name)
    x = sample()
    own, own_x_hat = round_trip(model, x)
    patched = ldem.compressai.patch(copy.deepcopy(model))
    out, x_hat = round_trip(patched, x)
    assert torch.equal(x_hat, own_x_hat)
    assert out["shape"] == own["shape"] and [len(s) for s in out["strings"]] == [1] * len(own["strings"])
    assert all(a != b for a, b in zip(out["strings"], own["strings"]))  # ldem streams, not CompressAI's bytes
    # A few header bytes per stream over CompressAI's (the model is untrained: streams are tiny).
    assert total_bytes(out) <= 1.001 * total_bytes(own) + 32 * num_streams(out)


def test_trained_model_identical_and_within_a_thousandth(trained):
    x = sample(256, 384)
    own, own_x_hat = round_trip(trained, x)
    out, x_hat = round_trip(ldem.compressai.patch(copy.deepcopy(trained)), x)
    assert torch.equal(x_hat, own_x_hat)
    ours, theirs = total_bytes(out), total_bytes(own)
    assert theirs > 10_000  # the latents are not all zeros
    assert abs(ours - theirs) <= 0.001 * theirs, (ours, theirs)


def test_latents_decode_to_compressai_s():
    model = make("bmshj2018-hyperprior")
    patched = ldem.compressai.patch(copy.deepcopy(model))
    with torch.no_grad():
        z = model.h_a(torch.abs(model.g_a(sample())))
        own = model.entropy_bottleneck.decompress(model.entropy_bottleneck.compress(z), z.shape[-2:])
        ours = patched.entropy_bottleneck.decompress(patched.entropy_bottleneck.compress(z), z.shape[-2:])
    assert torch.equal(ours, own) and ours.dtype == own.dtype


# -- the tables --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bmshj2018-hyperprior"])
def test_tables_are_converted_exactly(name):
    model = ldem.compressai.patch(make(name))
    for module_name, coding in codings(model).items():
        m = coding.module
        d = coding.dictionary()
        assert d.num_models == m._cdf_length.numel() and d.precision == 16
        for j in range(d.num_models):
            length = int(m._cdf_length[j])
            freq = np.diff(m._quantized_cdf[j, :length].numpy())
            assert d.frequencies(j).tolist() == freq.tolist(), (module_name, j)  # the escape is the overflow slot
            assert d.support(j) == (int(m._offset[j]), int(m._offset[j]) + length - 2)


def test_tables_follow_update():
    model = ldem.compressai.patch(make("bmshj2018-factorized"))
    coding = model.entropy_bottleneck.compress.__self__
    before = coding.dictionary()
    assert coding.dictionary() is before  # cached while the tables stay
    with torch.no_grad():
        model.entropy_bottleneck.quantiles[:, :, 0] -= 3
    model.update(force=True)
    after = coding.dictionary()
    assert after != before
    cdf = model.entropy_bottleneck._quantized_cdf
    assert after.frequencies(0).tolist() == np.diff(cdf[0, :int(model.entropy_bottleneck._cdf_length[0])]).tolist()
    own = make("bmshj2018-factorized")
    with torch.no_grad():
        own.entropy_bottleneck.quantiles[:, :, 0] -= 3
    own.update(force=True)
    x = sample(64, 64)
    assert torch.equal(round_trip(model, x)[1], round_trip(own, x)[1])


# -- threads and batches -----------------------------------------------------------------------
def test_every_thread_count_gives_the_same_strings_and_latents():
    model = make("mbt2018-mean")
    x = sample(128, 192)
    results = []
    for threads in (1, 2, None):
        patched = ldem.compressai.patch(copy.deepcopy(model), threads=threads)
        results.append(round_trip(patched, x))
    (out, x_hat), rest = results[0], results[1:]
    for other_out, other_x_hat in rest:
        assert other_out["strings"] == out["strings"]
        assert torch.equal(other_x_hat, x_hat)
    for threads in (1, 2, None):  # and each decodes the others' strings
        patched = ldem.compressai.patch(copy.deepcopy(model), threads=threads)
        with torch.no_grad():
            assert torch.equal(patched.decompress(out["strings"], out["shape"])["x_hat"], x_hat)


def test_batch_gives_per_image_strings():
    model = make("bmshj2018-hyperprior")
    patched = ldem.compressai.patch(copy.deepcopy(model))
    x = torch.cat([sample(64, 128, top=t, left=s) for t, s in ((0, 0), (64, 128), (128, 256))])
    own, own_x_hat = round_trip(model, x)
    out, x_hat = round_trip(patched, x)
    assert [len(s) for s in out["strings"]] == [3, 3]
    assert torch.equal(x_hat, own_x_hat)
    with torch.no_grad():
        for i in range(3):
            one = patched.decompress([[s[i]] for s in out["strings"]], out["shape"])["x_hat"]
            assert torch.equal(one, x_hat[i:i + 1])



@pytest.mark.parametrize("local", [False, True])
def test_an_empty_batch_gives_empty_strings(local):
    model = make("bmshj2018-hyperprior")
    patched = ldem.compressai.patch(copy.deepcopy(model), local=local)
    x = torch.zeros(0, 3, 64, 64)
    own, _ = round_trip(model, x)
    out, x_hat = round_trip(patched, x)
    assert out["strings"] == own["strings"] == [[], []]
    assert x_hat.shape == (0, 3, 64, 64)


def test_each_string_is_one_segment_with_few_states():
    """A per-image string carries one segment: 4 lanes, or 1 lane for a tiny latent (z)."""
    model = make("bmshj2018-hyperprior")
    out, _ = round_trip(ldem.compressai.patch(copy.deepcopy(model)), sample(128, 192))
    y_string, z_string = out["strings"][0][0], out["strings"][1][0]
    for string, lanes in ((y_string, 4), (z_string, 1)):
        assert ldem._core.stream_params(string) == (lanes, 31)  # (lanes, segment size log2)


# -- local entropy models ----------------------------------------------------------------------
def test_local_models_are_smaller_on_the_trained_model(trained):
    x = sample(256, 384)
    own, own_x_hat = round_trip(trained, x)
    plain, _ = round_trip(ldem.compressai.patch(copy.deepcopy(trained)), x)
    local, x_hat = round_trip(ldem.compressai.patch(copy.deepcopy(trained), local=True), x)
    assert torch.equal(x_hat, own_x_hat)
    assert total_bytes(local) < total_bytes(plain)


def test_local_with_a_static_dictionary():
    model = make("bmshj2018-hyperprior")
    static = ldem.Dictionary.from_pmfs([[0.05, 0.9, 0.05]] * 4, offsets=[-1] * 4)
    patched = ldem.compressai.patch(copy.deepcopy(model), local=True, static=static)
    x = sample(64, 128)
    assert torch.equal(round_trip(patched, x)[1], round_trip(model, x)[1])


# -- autoregressive models and other entropy modules ------------------------------------------
def test_autoregressive_model_keeps_its_own_y_coder():
    model = make("mbt2018")
    x = sample(64, 64)
    own, own_x_hat = round_trip(model, x)
    out, x_hat = round_trip(ldem.compressai.patch(copy.deepcopy(model)), x)
    assert torch.equal(x_hat, own_x_hat)
    assert out["strings"][0] == own["strings"][0]    # y: CompressAI's symbol-by-symbol coder
    assert out["strings"][1] != own["strings"][1]    # z: the hyperprior's bottleneck, through ldem


def test_subclasses_that_code_themselves_are_left_alone():
    holder = torch.nn.Module()
    holder.eb = EntropyBottleneck(4)
    holder.gmm = GaussianMixtureConditional()
    holder.eb.update()
    ldem.compressai.patch(holder)
    assert "compress" in vars(holder.eb) and "compress" not in vars(holder.gmm)


def test_patching_twice_takes_the_new_settings():
    model = make("bmshj2018-factorized")
    x = sample(64, 64)
    own_x_hat = round_trip(model, x)[1]
    patched = ldem.compressai.patch(ldem.compressai.patch(copy.deepcopy(model), local=True), threads=1)
    assert not patched.entropy_bottleneck.compress.__self__.local
    assert torch.equal(round_trip(patched, x)[1], own_x_hat)


# -- damaged strings and hostile arguments -----------------------------------------------------
@pytest.mark.parametrize("local", [False, True])
def test_damaged_strings_raise_decode_error(local):
    model = ldem.compressai.patch(make("bmshj2018-factorized"), local=local)
    with torch.no_grad():
        out = model.compress(sample(64, 64))
        good = out["strings"][0][0]
        damaged = [good[:len(good) // 2], good[:-1], good[:3], b""]
        for pos in (0, 3, 5, len(good) // 2, len(good) - 1):
            bad = bytearray(good)
            bad[pos] ^= 0x5A
            damaged.append(bytes(bad))
        for bad in damaged:
            with pytest.raises(ldem.DecodeError):
                model.decompress([[bad]], out["shape"])


def test_strings_of_another_shape_raise_decode_error():
    model = ldem.compressai.patch(make("bmshj2018-factorized"))
    with torch.no_grad():
        out = model.compress(sample(64, 64))
        with pytest.raises(ldem.DecodeError):
            model.decompress(out["strings"], (8, 4))


def test_unupdated_model_is_refused():
    torch.manual_seed(0)
    model = zoo.bmshj2018_hyperprior(quality=1, pretrained=False).eval()
    with pytest.raises(ValueError, match=r"model\.update\(\)"):
        ldem.compressai.patch(model)


def test_hostile_arguments():
    model = make("bmshj2018-hyperprior")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ldem.compressai.patch("bmshj2018-hyperprior")
    with pytest.raises(ValueError, match="no EntropyBottleneck"):
        ldem.compressai.patch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="local"):
        ldem.compressai.patch(model, local="yes")
    with pytest.raises(ValueError, match="threads"):
        ldem.compressai.patch(model, threads=0)
    with pytest.raises(TypeError, match="static"):
        ldem.compressai.patch(model, local=True, static=b"tables")
    with pytest.raises(ValueError, match="static"):
        ldem.compressai.patch(model, static=ldem.Dictionary.from_pmfs([[1.0]], [0]))
    with pytest.raises(ValueError, match="effort"):
        ldem.compressai.patch(model, local=True, effort=4)
    ldem.compressai.patch(model)
    eb, gc = model.entropy_bottleneck, model.gaussian_conditional
    with torch.no_grad():
        with pytest.raises(TypeError, match="torch.Tensor"):
            eb.compress(np.zeros((1, 128, 2, 2), np.float32))
        with pytest.raises(ValueError, match="channels"):
            eb.compress(torch.zeros(1, 3, 2, 2))
        with pytest.raises(TypeError, match="list of bytes"):
            eb.decompress(b"not a list", (2, 2))
        with pytest.raises(TypeError, match=r"strings\[0\] must be bytes"):
            eb.decompress(["text"], (2, 2))
        with pytest.raises(TypeError, match="size"):
            eb.decompress([b""], "2x2")
        y = torch.zeros(1, 192, 2, 2)
        indexes = torch.zeros(1, 192, 2, 2, dtype=torch.int32)
        with pytest.raises(ValueError, match="same size"):
            gc.compress(y, indexes[:, :, :1])
        with pytest.raises(ValueError, match=r"indexes must be in \[0, 64\)"):
            gc.compress(y, indexes + 64)
        with pytest.raises(TypeError, match="integers"):
            gc.compress(y, indexes.float())
        strings = gc.compress(y, indexes)
        with pytest.raises(ValueError, match="2 strings for 1 images"):
            gc.decompress(strings * 2, indexes)
        with pytest.raises(ValueError, match="means"):
            gc.decompress(strings, indexes, means=torch.zeros(1, 192, 2, 3))
        assert torch.equal(gc.decompress(strings, indexes), y)
