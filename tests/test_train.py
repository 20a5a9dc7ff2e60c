"""ldem.train and ldem.export: a tiny training run, resume, and a model file the codec loads."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import ldem  # noqa: E402
from ldem.codec import ImageCodec, read_header  # noqa: E402
from ldem.export import estimate_rd, export_model, global_tables, main as export_main  # noqa: E402
from ldem.transforms import FactorizedDensity  # noqa: E402
from ldem.train import (PatchSampler, fit_densities, init_from_checkpoint, list_images,  # noqa: E402
                        load_checkpoint, revive_latent_channels, train)

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
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["iteration"] == 3
    assert train([str(images), "--out", str(run), "--iterations", "5", "--resume", *TINY]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 5
    log = (run / "train.log").read_text()
    assert "it=5 " in log and "bpp=" in log and "psnr=" in log
    assert json.loads((run / "config.json").read_text())["N"] == 8

    model = tmp_path / "model.npz"
    meta = export_model(run / "checkpoint.pt", model, images, static_models=2, progress=False)
    assert [lv["quality"] for lv in meta["levels"]] == [1, 2]
    assert meta["training"][0]["iterations"] == 5
    codec = ImageCodec.load(model, quality=2)
    assert codec.level == 1
    img = np.zeros((20, 40, 3), np.uint8)
    assert codec.decompress_array(codec.compress(img)).shape == img.shape
    bpp, psnr = estimate_rd(codec.net, list_images(images)[:1], 1)
    assert bpp > 0 and psnr > 0

    # shipping a subset of the trained levels: quality 1 of the new file is level 1
    sub = tmp_path / "sub.npz"
    meta = export_model(run / "checkpoint.pt", sub, images, static_models=2, levels=[1], progress=False)
    assert [(lv["quality"], lv["level"]) for lv in meta["levels"]] == [(1, 1)]
    one = ImageCodec.load(sub, quality=1)
    assert one.num_qualities == 1
    assert np.array_equal(one.latent(img)[0], codec.latent(img)[0])
    with pytest.raises(ValueError, match="levels"):
        export_model(run / "checkpoint.pt", sub, images, levels=[2], progress=False, force=True)


def test_export_several_checkpoints(images, tmp_path):
    """Two networks in one model file: each quality runs on its own transforms and level."""
    low, high = tmp_path / "low", tmp_path / "high"
    train([str(images), "--out", str(low), "--iterations", "2", *TINY])
    wide = [a if a != "8" else "12" for a in TINY]  # another N: the sets need not match
    train([str(images), "--out", str(high), "--iterations", "2", "--seed", "1", *wide])
    both = tmp_path / "both.npz"
    assert export_main([str(low / "checkpoint.pt"), str(high / "checkpoint.pt"), str(both), "--data", str(images),
                        "--static-models", "2", "--levels", "0,1", "1"]) == 0
    bundle = ImageCodec.load(both, quality=1).bundle
    assert bundle.num_qualities == 3 and [c["N"] for c in bundle.configs] == [8, 12]
    assert [bundle.level_of(q) for q in (1, 2, 3)] == [(0, 0), (0, 1), (1, 1)]
    img = np.asarray(Image.open(ldem.sample_image_path()).crop((0, 0, 50, 40)))
    for q in (1, 2, 3):
        codec = ImageCodec.load(both, quality=q)
        data = codec.compress(img)
        assert ImageCodec.for_file(data, model=both).quality == q
        assert codec.decompress_array(data).shape == img.shape
    # the high network's quality is the same latent as a file made from that checkpoint alone
    alone = tmp_path / "alone.npz"
    export_model(high / "checkpoint.pt", alone, images, static_models=2, levels=[1], progress=False)
    assert np.array_equal(ImageCodec.load(both, quality=3).latent(img)[0],
                          ImageCodec.load(alone, quality=1).latent(img)[0])
    # a model file as a source: its qualities are copied as they are (same latent stream)
    merged = tmp_path / "merged.npz"
    export_main([str(both), str(high / "checkpoint.pt"), str(merged), "--data", str(images), "--static-models", "2",
                 "--levels", "1,3", "0"])
    m = ImageCodec.load(merged, quality=1).bundle
    assert m.num_qualities == 3 and [m.level_of(q) for q in (1, 2, 3)] == [(0, 0), (1, 1), (2, 0)]
    assert [c["N"] for c in m.configs] == [8, 12, 12]
    for q_src, q_new in ((1, 1), (3, 2)):
        a = ImageCodec.load(both, quality=q_src).compress(img)
        b = ImageCodec.load(merged, quality=q_new).compress(img)
        ha, hb = read_header(a), read_header(b)
        assert a[ha["header_bytes"]:] == b[hb["header_bytes"]:] and ha["model_id"] != hb["model_id"]
    with pytest.raises(ValueError, match="qualities must be"):
        export_model([both], merged, images, levels=[[4]], progress=False, force=True)
    with pytest.raises(FileNotFoundError):
        export_model([tmp_path / "missing.pt"], merged, images, progress=False, force=True)
    with pytest.raises(ValueError, match="one comma list per checkpoint|2 comma lists"):
        export_main([str(low / "checkpoint.pt"), str(high / "checkpoint.pt"), str(both), "--data", str(images),
                     "--levels", "0,1", "--force"])
    with pytest.raises(ValueError, match="levels"):
        export_model([low / "checkpoint.pt", high / "checkpoint.pt"], both, images, levels=[[0], [5]],
                     progress=False, force=True)
    # the output is never a source, and an existing output needs force
    before = both.read_bytes()
    with pytest.raises(ValueError, match="is the input"):
        export_model([both, high / "checkpoint.pt"], both, images, progress=False, force=True)
    with pytest.raises(FileExistsError, match="--force"):
        export_main([str(high / "checkpoint.pt"), str(both), "--data", str(images)])
    assert both.read_bytes() == before


def test_export_levels_count_from_1_and_print_a_summary(images, tmp_path, capsys):
    run = tmp_path / "run"
    train([str(images), "--out", str(run), "--iterations", "1", *TINY, "--lambdas", "0.002", "0.02", "0.05"])
    ck, data = str(run / "checkpoint.pt"), str(images)
    capsys.readouterr()
    sub = tmp_path / "sub.npz"
    assert export_main([ck, str(sub), "--data", data, "--static-models", "2", "--levels", "2,3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{sub}: ") and "2 qualities on 1 set of transforms" in out[0]
    assert [line.split()[:4] for line in out[2:]] == [["1", "0", "2", "0.02"], ["2", "0", "3", "0.05"]]
    assert len(out) == 4
    bundle = ImageCodec.load(sub, quality=1).bundle
    assert [bundle.level_of(q) for q in (1, 2)] == [(0, 1), (0, 2)]
    # the old numbering from 0 still works where it is unambiguous (a 0 in a checkpoint's list), with a note
    old = tmp_path / "old.npz"
    assert export_main([str(sub), ck, str(old), "--data", data, "--static-models", "2", "--levels", "2", "0,2",
                        "--json"]) == 0
    captured = capsys.readouterr()
    assert "old numbering from 0" in captured.err and "--levels 2 1,3" in captured.err
    assert [(lv["quality"], lv["transforms"], lv["level"]) for lv in json.loads(captured.out)] == \
        [(1, 0, 2), (2, 1, 0), (3, 1, 2)]
    with pytest.raises(ValueError, match=r"has trained levels 1\.\.3 .*not 4"):
        export_main([ck, str(tmp_path / "x.npz"), "--data", data, "--levels", "3,4"])
    with pytest.raises(ValueError, match="numbers from 1"):
        export_main([ck, str(tmp_path / "x.npz"), "--data", data, "--levels", "one"])
    assert not (tmp_path / "x.npz").exists()


def test_export_help_gives_defaults(capsys):
    with pytest.raises(SystemExit):
        export_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "dictionary learned for each quality from the training latents (default: 64)" in text
    assert "(the first N by path) (default: 64)" in text and "counted from 1" in text


def test_model_file_format_1_and_bad_references(images, tmp_path):
    """Files of format 1 (one set of transforms under param/) still load; a quality that
    names missing transforms is refused when the file is opened."""
    run = tmp_path / "run"
    train([str(images), "--out", str(run), "--iterations", "1", *TINY])
    new = tmp_path / "new.npz"
    export_model(run / "checkpoint.pt", new, images, static_models=2, progress=False)
    with np.load(new) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays.pop("meta.json")).decode())

    def write(path, meta, arrays):
        with open(path, "wb") as f:
            np.savez(f, **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(), np.uint8)})

    old_meta = {"format": 1, "config": meta["transforms"][0],
                "levels": [{k: v for k, v in lv.items() if k != "transforms"} for lv in meta["levels"]]}
    old_arrays = {(k.replace("param0/", "param/", 1)): v for k, v in arrays.items()}
    write(tmp_path / "old.npz", old_meta, old_arrays)
    img = np.zeros((20, 40, 3), np.uint8)
    a, b = ImageCodec.load(new, quality=2), ImageCodec.load(tmp_path / "old.npz", quality=2)
    assert np.array_equal(a.latent(img)[0], b.latent(img)[0])
    assert b.decompress_array(b.compress(img)).shape == img.shape

    for bad_level in ({"transforms": 1}, {"level": 7}):
        bad = dict(meta, levels=[dict(meta["levels"][0], **bad_level)])
        write(tmp_path / "bad.npz", bad, arrays)
        with pytest.raises(ValueError, match="lacks"):
            ImageCodec.load(tmp_path / "bad.npz", quality=1)
    write(tmp_path / "bad.npz", {"format": 2, "levels": meta["levels"]}, arrays)
    with pytest.raises(ValueError, match="not a valid ldem model file"):
        ImageCodec.load(tmp_path / "bad.npz", quality=1)


def test_train_help_gives_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        train(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--N N", "128"), ("--iterations ITERATIONS", "100000"), ("--batch BATCH", "16"),
                          ("--patch PATCH", "256"), ("--lr LR", "0.0001"), ("--seed SEED", "0"),
                          ("--checkpoint-every CHECKPOINT_EVERY", "500")]:
        after = text.split(f" {flag} ", 1)[1]
        assert f"(default: {default})" in after.split(" --", 1)[0], flag
    assert "(default: None)" not in text and "(default: False)" not in text


def test_unreadable_images_are_skipped_with_a_warning(images, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes((images / "a.png").read_bytes())
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (data / "cut.png").write_bytes((images / "a.png").read_bytes()[:200])
    (data / "tiny.png").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(data / "small.png")
    assert train([str(data), "--out", str(tmp_path / "run"), "--iterations", "1", *TINY]) == 0
    err = capsys.readouterr().err.splitlines()
    skipped = sorted(line for line in err if "skipping" in line)
    assert [line.split(": ")[2].rsplit("/", 1)[1] for line in skipped] == ["broken.jpg", "cut.png", "tiny.png"]
    assert all(line.startswith("ldem train: warning: skipping ") for line in skipped)
    assert any("1 images smaller than the 32-pixel patch" in line for line in err)
    for name in ("a.png", "small.png"):
        (data / name).unlink()
    with pytest.raises(ValueError, match="no usable training image among 3"):
        train([str(data), "--out", str(tmp_path / "run2"), "--iterations", "1", *TINY])


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
    ck = torch.load(src / "checkpoint.pt", weights_only=True)
    ema = ck["ema"]
    new = [a for a in TINY if a not in ("0.002", "0.02")]
    new[new.index("--lambdas") + 1:new.index("--lambdas") + 1] = ["0.001", "0.002", "0.02"]
    dst = tmp_path / "dst"
    assert train([str(images), "--out", str(dst), "--iterations", "0", "--init", str(src / "checkpoint.pt"),
                  *new]) == 0
    got = torch.load(dst / "checkpoint.pt", weights_only=True)["model"]
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


def test_init_widens_a_narrower_run(images, tmp_path):
    """--init from N=8 into N=16: the widened transforms compute what the narrow ones did."""
    src = tmp_path / "src"
    train([str(images), "--out", str(src), "--iterations", "2", *TINY])
    wide = list(TINY)
    wide[wide.index("--N") + 1] = "16"
    dst = tmp_path / "dst"
    assert train([str(images), "--out", str(dst), "--iterations", "0", "--init", str(src / "checkpoint.pt"),
                  *wide]) == 0
    from ldem.transforms import GainedFactorizedCodec
    a_ck = torch.load(src / "checkpoint.pt", weights_only=True)
    b_ck = torch.load(dst / "checkpoint.pt", weights_only=True)
    a = GainedFactorizedCodec.from_config(a_ck["config"])
    a.load_state_dict(a_ck["model"])
    a.load_state_dict(a_ck["ema"], strict=False)
    b = GainedFactorizedCodec.from_config(b_ck["config"])
    b.load_state_dict(b_ck["model"])
    assert b.N == 16 and b.g_s.net[2].weight.shape == (16, 16, 5, 5)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for level in (0, 1):
            ya, yb = a.analysis(x, level), b.analysis(x, level)
            assert torch.allclose(ya, yb, atol=1e-5)
            assert torch.allclose(a.synthesis(ya.round(), level), b.synthesis(ya.round(), level), atol=1e-5)
        assert b.g_s.net[2].weight[8:].abs().sum() == 0  # new channels start silent
        assert b.g_s.net[0].weight[:, 8:].abs().sum() > 0  # ... with fresh incoming weights
    narrow = list(TINY)
    narrow[narrow.index("--N") + 1] = "4"
    with pytest.raises(ValueError, match="--init"):
        train([str(images), "--out", str(tmp_path / "n"), "--iterations", "0", "--init",
               str(src / "checkpoint.pt"), *narrow])


def test_init_from_model_file(images, tmp_path, capsys):
    """A model file (no densities) can start a run: its weights load, densities are fitted."""
    run = tmp_path / "run"
    train([str(images), "--out", str(run), "--iterations", "2", *TINY])
    model = tmp_path / "m.npz"
    export_model(run / "checkpoint.pt", model, images, static_models=2, progress=False)
    dst = tmp_path / "dst"
    assert train([str(images), "--out", str(dst), "--iterations", "1", "--init", str(model), *TINY]) == 0
    assert "fitted densities" in capsys.readouterr().err
    got = torch.load(dst / "checkpoint.pt", weights_only=True)["ema"]
    bundle = ImageCodec.load(model, quality=1).bundle
    before = torch.from_numpy(bundle.states[0]["g_s.net.0.weight"].astype(np.float32))
    assert torch.allclose(got["g_s.net.0.weight"], before, atol=1e-2)  # one step from the file's weights
    with pytest.raises(ValueError, match="--init-transforms"):
        train([str(images), "--out", str(tmp_path / "x"), "--iterations", "0", "--init", str(model),
               "--init-transforms", "1", *TINY])


def test_revive_latent_channels_keeps_the_reconstruction(images):
    from ldem.transforms import GainedFactorizedCodec
    torch.manual_seed(0)
    net = GainedFactorizedCodec([0.002, 0.02], N=8, M=12)
    off = [0, 3, 7]
    with torch.no_grad():
        net.g_a.net[-1].weight[off] = 0
        net.g_a.net[-1].bias[off] = 0
        net.log_gain += 4.0  # the other channels: latents well above the rounding step
    sampler = PatchSampler(list_images(images), 32, seed=2)
    fit_densities(net, sampler, patches=8, steps=150, lr=3e-2)  # switched-off channels: a spike at 0
    x = sampler.batch(4)
    with torch.no_grad():
        before = net.synthesis(net.analysis(x, 1).round(), 1)
        revived = revive_latent_channels(net, sampler, threshold=1e-3, patches=8)
        assert set(off) <= set(revived) and len(revived) < 12
        after = net.synthesis(net.analysis(x, 1).round(), 1)
        assert torch.allclose(before, after, atol=1e-5)  # their synthesis weights start at zero
        assert all(net.g_a.net[-1].weight[c].abs().sum() > 0 for c in off)  # ... and their analysis restarts
        live = [c for c in range(12) if c not in revived]
        assert torch.allclose(net.log_gain[:, off], net.log_gain[:, live].mean(dim=1, keepdim=True).expand(-1, 3))
    with pytest.raises(ValueError, match="needs --init"):
        train([str(images), "--out", "unused", "--iterations", "0", "--revive-channels", *TINY])


class _Marker:
    """Unpickling this would create a file: what a hostile checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_that_runs_code_is_refused(images, tmp_path):
    """Checkpoints are read with torch.load(weights_only=True): a pickled __reduce__ never
    runs, in export, --init or --resume; each raises ValueError naming the file."""
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    train([str(images), "--out", str(run), "--iterations", "1", *TINY])
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save(dict(ck, model=dict(ck["model"], extra=_Marker(marker))), evil)
    with pytest.raises(ValueError, match="evil.pt cannot be loaded safely"):
        load_checkpoint(evil)
    with pytest.raises(ValueError, match="loaded safely"):
        export_model(evil, tmp_path / "m.npz", images, progress=False)
    with pytest.raises(ValueError, match="loaded safely"):
        train([str(images), "--out", str(tmp_path / "x"), "--iterations", "0", "--init", str(evil), *TINY])
    torch.save(dict(ck, sampler_rng=_Marker(marker)), run / "checkpoint.pt")
    with pytest.raises(ValueError, match="loaded safely"):
        train([str(images), "--out", str(run), "--iterations", "2", "--resume", *TINY])
    assert not marker.exists()


def test_damaged_checkpoints_raise_value_error(images, tmp_path):
    run = tmp_path / "run"
    train([str(images), "--out", str(run), "--iterations", "1", *TINY])
    good = (run / "checkpoint.pt").read_bytes()
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    bad = tmp_path / "bad.pt"
    for data in (b"", b"junk", good[:len(good) // 2], good[:100], good[:-10]):
        bad.write_bytes(data)
        with pytest.raises(ValueError, match="bad.pt"):
            load_checkpoint(bad)
    for obj in ([1, 2], {"model": {"w": 1}, "config": {}}, {"model": {}}, dict(ck, ema=[1]), dict(ck, iteration=-1),
                dict(ck, elapsed=float("nan")), dict(ck, elapsed="1")):
        torch.save(obj, bad)
        with pytest.raises(ValueError, match="bad.pt"):
            load_checkpoint(bad)
    with pytest.raises(ValueError, match="regular file"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    # a checkpoint whose config or weights do not fit: ValueError, not RuntimeError or KeyError
    torch.save(dict(ck, config=dict(ck["config"], N=10**9)), bad)
    with pytest.raises(ValueError, match="N must be"):
        export_model(bad, tmp_path / "m.npz", images, progress=False)
    with pytest.raises(ValueError, match="N must be"):
        train([str(images), "--out", str(tmp_path / "x"), "--iterations", "0", "--init", str(bad), *TINY])
    torch.save(dict(ck, model={k: v for k, v in ck["model"].items() if k != "g_a.net.0.weight"},
                    ema={k: v for k, v in ck["ema"].items() if k != "g_a.net.0.weight"}), bad)
    with pytest.raises(ValueError, match="do not match"):
        export_model(bad, tmp_path / "m.npz", images, progress=False)
    with pytest.raises(ValueError, match="do not match"):
        train([str(images), "--out", str(tmp_path / "x"), "--iterations", "0", "--init", str(bad), *TINY])
    torch.save(dict(ck, sampler_rng=(1, 2)), run / "checkpoint.pt")
    with pytest.raises(ValueError, match="--resume"):
        train([str(images), "--out", str(run), "--iterations", "2", "--resume", *TINY])


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
    ck = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    assert ck["iteration"] == 2 and len(ck["config"]["lambdas"]) == 3


def test_export_learns_context_families_and_keeps_old_files_readable(images, tmp_path):
    """Context families per quality, from several --data folders; a model file copied
    whole reads the source's .ldem files when it keeps their context families."""
    run = tmp_path / "run"
    train([str(images), "--out", str(run), "--iterations", "2", *TINY])
    first = tmp_path / "first.npz"
    assert export_main([str(run / "checkpoint.pt"), str(first), "--data", str(images), str(images / "sub"),
                        "--static-models", "2", "--static-families", "3"]) == 0
    b = ImageCodec.load(first, quality=1).bundle
    cg, cs = b.context_tables(1)
    assert cg.num_models == 12 * ldem.local.NUM_CONTEXTS and 0 < cs.num_models <= 3 * ldem.local.NUM_CONTEXTS
    assert b.levels[0]["static_context_families"] == cs.num_models // ldem.local.NUM_CONTEXTS
    img = np.asarray(Image.open(ldem.sample_image_path()).crop((0, 0, 64, 48)))
    old = ImageCodec.load(first, quality=2).compress(img)
    assert ImageCodec.load(first, quality=2).info(old)["latent_contexts"]
    # --contexts keep copies them as they are: the old files decode.
    kept = tmp_path / "kept.npz"
    assert export_main([str(first), str(kept), "--data", str(images), "--contexts", "keep"]) == 0
    k = ImageCodec.load(kept, quality=1).bundle
    assert k.context_tables(1)[0].to_bytes() == cg.to_bytes() and k.compatible_model_ids == (b.model_id,)
    assert np.array_equal(ImageCodec.for_file(old, model=kept).decompress_array(old),
                          ImageCodec.load(first, quality=2).decompress_array(old))
    # --contexts learn: new families, so the new file does not claim the old files.
    again = tmp_path / "again.npz"
    assert export_main([str(first), str(again), "--data", str(images), "--contexts", "learn",
                        "--static-families", "2"]) == 0
    new = ImageCodec.load(again, quality=2)
    assert new.bundle.compatible_model_ids == ()
    assert new.bundle.context_tables(2)[1].num_models <= 2 * ldem.local.NUM_CONTEXTS
    with pytest.raises(ldem.DecodeError, match="made by model"):
        ImageCodec.for_file(old, model=again)


def test_export_adds_block_transform_qualities_on_a_ladder(images, tmp_path, capsys):
    """--block-steps adds KLT qualities learned from --data after the sources'; --ladder
    keeps some of the sources' qualities on offer and the rest in the file, so the
    source's .ldem files (at every quality) still decode."""
    run = tmp_path / "run"
    train([str(images), "--out", str(run), "--iterations", "2", *TINY])
    first = tmp_path / "first.npz"
    assert export_main([str(run / "checkpoint.pt"), str(first), "--data", str(images),
                        "--static-models", "2", "--static-families", "2"]) == 0
    img = np.asarray(Image.open(ldem.sample_image_path()).crop((0, 0, 64, 48)))
    old = ImageCodec.load(first, quality=2).compress(img)  # quality 2 leaves the new ladder
    out = tmp_path / "block.npz"
    capsys.readouterr()
    assert export_main([str(first), str(out), "--data", str(images), "--static-models", "2",
                        "--static-families", "2", "--block-steps", "24", "6", "--ladder", "1"]) == 0
    printed = capsys.readouterr().out
    assert "3 qualities" in printed and "1 more entries kept for older files" in printed and "24" in printed
    b = ImageCodec.load(out, quality=1).bundle
    assert b.ladder == [1, 3, 4] and len(b.levels) == 4 and b.compatible_model_ids[0] == \
        ImageCodec.load(first, quality=1).bundle.model_id
    assert [b.is_block_transform(b.level_of(q)[0]) for q in (1, 2, 3)] == [False, True, True]
    # the old file decodes with the same pixels, through entry 2
    again = ImageCodec.for_file(old, model=out)
    assert again.entry == 2 and np.array_equal(again.decompress_array(old),
                                               ImageCodec.load(first, quality=2).decompress_array(old))
    # the block qualities code, and a smaller step gives a better picture for more bytes
    sizes, errors = [], []
    for q in (2, 3):
        c = ImageCodec.load(out, quality=q)
        data = c.compress(img)
        dec = ImageCodec.for_file(data, model=out).decompress_array(data)
        sizes.append(len(data))
        errors.append(((dec.astype(float) - img) ** 2).mean())
        assert c.bundle.context_tables(c.entry)[0] is not None
    assert sizes[0] < sizes[1] and errors[0] > errors[1]
    for bad in (["--ladder", "0"], ["--ladder", "2,1"], ["--ladder", "x"], ["--block-steps", "0"]):
        with pytest.raises((ValueError, SystemExit)):
            export_main([str(first), str(tmp_path / "bad.npz"), "--data", str(images), *bad])
    assert not (tmp_path / "bad.npz").exists()
