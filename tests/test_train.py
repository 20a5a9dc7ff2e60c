"""ldem.train and ldem.export: a tiny training run, resume, and a model file the codec loads."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import ldem  # noqa: E402
from ldem.codec import ImageCodec  # noqa: E402
from ldem.export import estimate_rd, export_model, global_tables  # noqa: E402
from ldem.models import FactorizedDensity  # noqa: E402
from ldem.train import PatchSampler, init_from_checkpoint, list_images, train  # noqa: E402

TINY = ["--N", "8", "--M", "12", "--patch", "32", "--batch", "3", "--lambdas", "0.002", "0.02",
        "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    with Image.open(ldem.sample_image_path()) as im:
        im.crop((0, 0, 96, 80)).save(d / "a.png")
        im.crop((100, 50, 260, 170)).convert("L").save(d / "b.jpg")
        (d / "sub").mkdir()
        im.crop((200, 100, 300, 180)).save(d / "sub" / "c.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_list_images_and_sampler(images):
    paths = list_images(images)
    assert [p.name for p in paths] == ["a.png", "b.jpg", "c.png"]
    s = PatchSampler(paths, 32, seed=1)
    b = s.batch(4)
    assert b.shape == (4, 3, 32, 32) and 0 <= float(b.min()) and float(b.max()) <= 1
    with pytest.raises(ValueError, match="short side"):
        PatchSampler(paths, 1000)
    with pytest.raises(FileNotFoundError):
        list_images(images / "missing")


def test_train_resume_export_load(images, tmp_path):
    run = tmp_path / "run"
    assert train([str(images), "--out", str(run), "--iterations", "3", *TINY]) == 0
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ck["iteration"] == 3
    assert train([str(images), "--out", str(run), "--iterations", "5", "--resume", *TINY]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=False)["iteration"] == 5
    log = (run / "train.log").read_text()
    assert "it=5 " in log and "bpp=" in log and "psnr=" in log
    assert json.loads((run / "config.json").read_text())["N"] == 8

    model = tmp_path / "model.npz"
    meta = export_model(run / "checkpoint.pt", model, images, static_models=2, progress=False)
    assert [lv["quality"] for lv in meta["levels"]] == [1, 2]
    assert meta["training"]["iterations"] == 5
    codec = ImageCodec.load(model, quality=2)
    img = np.zeros((20, 40, 3), np.uint8)
    assert codec.decompress_array(codec.compress(img)).shape == img.shape
    bpp, psnr = estimate_rd(codec.bundle.net(), list_images(images)[:1], 1)
    assert bpp > 0 and psnr > 0

    # shipping a subset of the trained levels: quality 1 of the new file is level 1
    sub = tmp_path / "sub.npz"
    meta = export_model(run / "checkpoint.pt", sub, images, static_models=2, levels=[1], progress=False)
    assert [(lv["quality"], lv["level"]) for lv in meta["levels"]] == [(1, 1)]
    one = ImageCodec.load(sub, quality=1)
    assert one.num_qualities == 1
    assert np.array_equal(one.latent(img)[0], codec.latent(img)[0])
    with pytest.raises(ValueError, match="levels"):
        export_model(run / "checkpoint.pt", sub, images, levels=[2], progress=False)


def test_resume_mismatch_and_missing(images, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train([str(images), "--out", str(tmp_path / "r"), "--iterations", "1", "--resume", *TINY])
    train([str(images), "--out", str(tmp_path / "r"), "--iterations", "1", *TINY])
    other = [a if a != "12" else "16" for a in TINY]
    with pytest.raises(ValueError, match="differs"):
        train([str(images), "--out", str(tmp_path / "r"), "--iterations", "2", "--resume", *other])


def test_init_from_other_run_matches_levels_by_lambda(images, tmp_path):
    src = tmp_path / "src"
    train([str(images), "--out", str(src), "--iterations", "2", *TINY])
    ck = torch.load(src / "checkpoint.pt", weights_only=False)
    ema = ck["ema"]
    new = [a for a in TINY if a not in ("0.002", "0.02")]
    new[new.index("--lambdas") + 1:new.index("--lambdas") + 1] = ["0.001", "0.002", "0.02"]
    dst = tmp_path / "dst"
    assert train([str(images), "--out", str(dst), "--iterations", "0", "--init", str(src / "checkpoint.pt"),
                  *new]) == 0
    got = torch.load(dst / "checkpoint.pt", weights_only=False)["model"]
    transforms = [k for k in got if k.startswith(("g_a.", "g_s."))]
    assert transforms and all(torch.equal(got[k], ema[k]) for k in transforms)
    # levels 1, 2 are the old levels 0, 1; the new level 0 starts from old level 0, one λ-halving down
    assert torch.equal(got["log_gain"][1:], ema["log_gain"])
    assert torch.allclose(got["log_gain"][0], ema["log_gain"][0] + 0.5 * np.log(0.5))
    assert torch.allclose(got["log_inv_gain"][0], ema["log_inv_gain"][0] - 0.5 * np.log(0.5))
    dens = [k for k in ema if k.startswith("densities.0.")]
    assert dens and all(torch.equal(got[k], ema[k]) and torch.equal(got[k.replace("densities.0.", "densities.1.")],
                                                                       ema[k]) for k in dens)

    with pytest.raises(ValueError, match="exclude"):
        train([str(images), "--out", str(dst), "--iterations", "1", "--init", str(src / "checkpoint.pt"),
               "--resume", *new])
    wide = [a if a != "12" else "16" for a in TINY]
    with pytest.raises(ValueError, match="--init"):
        train([str(images), "--out", str(tmp_path / "w"), "--iterations", "1", "--init",
               str(src / "checkpoint.pt"), *wide])


def test_global_tables_cover_density():
    d = FactorizedDensity(3)
    g = global_tables(d, span=256)
    assert g.num_models == 3 and g.precision == 16
    y = np.random.default_rng(0).integers(-40, 40, (3, 8, 8)).astype(np.int32)
    data = ldem.encode(y, np.arange(3, dtype=np.int32).reshape(3, 1, 1), g, block=(8, 8))
    assert np.array_equal(ldem.decode(data, np.arange(3, dtype=np.int32).reshape(3, 1, 1), g, y.shape,
                                      block=(8, 8)), y)


@pytest.mark.parametrize("budget", [[], ["--minutes", "30"]])  # with a time budget the ranks agree to stop
def test_ddp_on_cpu_with_torchrun(images, tmp_path, budget):
    """Two processes (gloo backend) train one model; rank 0 writes the checkpoint."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "ldem.train",
                        str(images), "--out", str(tmp_path / "ddp"), "--iterations", "2", *TINY, *budget,
                        "--lambdas", "0.001", "0.002", "0.02"],  # 3 levels, batch 3: every level used
                       capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    assert ck["iteration"] == 2 and len(ck["config"]["lambdas"]) == 3
