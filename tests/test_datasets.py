"""ldem_bench.datasets (benchmarks/), offline: manifest and listing, licence parsing, and the whole fetch pipeline
on a tiny local .deb (no network, no apt-get)."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ldem_bench import datasets
from ldem_bench.datasets import (
    FETCH_COMMAND,
    license_for,
    split_images,
    load_manifest,
    parse_copyright,
)


def make_cache(root, files):
    """A fake cache: ``files`` maps relative paths to splits."""
    entries = []
    for rel, split in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        entries.append({"file": rel, "split": split, "package": "pkg", "package_version": "1",
                        "source_path": "usr/share/" + rel, "license": "CC0", "sha256": "0" * 64,
                        "width": 1, "height": 1})
    (root / "manifest.json").write_text(json.dumps({"format": 1, "images": entries}))
    return root


def test_default_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LDEM_DATA", str(tmp_path / "d"))
    assert datasets.default_cache() == tmp_path / "d"
    monkeypatch.delenv("LDEM_DATA")
    assert datasets.default_cache().parts[-3:] == (".cache", "ldem", "data")


def test_list_images_and_manifest(tmp_path, monkeypatch):
    make_cache(tmp_path, {"train/b.jpg": "train", "train/a.jpg": "train",
                          "dev/photos/x.png": "dev_photos", "dev/simple/s.png": "dev_simple"})
    assert [p.name for p in split_images("train", tmp_path)] == ["a.jpg", "b.jpg"]
    assert split_images("dev_photos", str(tmp_path)) == [tmp_path / "dev/photos/x.png"]
    assert len(load_manifest(tmp_path)["images"]) == 4
    monkeypatch.setenv("LDEM_DATA", str(tmp_path))
    assert [p.name for p in split_images("dev_simple")] == ["s.png"]
    with pytest.raises(ValueError, match="unknown split"):
        split_images("test", tmp_path)


def test_missing_data_names_the_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_manifest(tmp_path / "nothing")
    assert FETCH_COMMAND in str(e.value)
    with pytest.raises(FileNotFoundError, match="benchmarks/fetch_data.py fetch"):
        split_images("train", tmp_path / "nothing")
    make_cache(tmp_path, {"train/a.jpg": "train"})
    (tmp_path / "train/a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="benchmarks/fetch_data.py fetch"):
        split_images("train", tmp_path)


def test_bad_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(ValueError):
        load_manifest(tmp_path)


def test_cli_info(tmp_path, capsys):
    make_cache(tmp_path, {"train/a.jpg": "train"})
    assert datasets.main(["info", "--cache", str(tmp_path)]) == 0
    assert "train" in capsys.readouterr().out
    assert datasets.main(["info", "--cache", str(tmp_path / "none")]) == 1
    assert FETCH_COMMAND in capsys.readouterr().err


DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: doc/*
       po/*/docs/*
Copyright: 2020 Someone
License: GFDL-1.2+

Files: 16.04/Bridge_by_X.jpg
Copyright: 2016 X
License: CC-BY-SA-4.0

Files: original-files/*
Copyright: 2019 Y
License: CC-BY-SA-4.0

Files: original-files/pic1/logo.jpg
Copyright: 2019 Z
License: LGPL-3+ or CC-BY-SA-3.0

License: GPL-2+
 This program is free software ...
"""


def test_parse_copyright():
    stanzas = parse_copyright(DEP5)
    assert stanzas[0] == (("*",), "GPL-2+")
    assert stanzas[1] == (("doc/*", "po/*/docs/*"), "GFDL-1.2+")
    assert len(stanzas) == 5
    assert parse_copyright("This package is in the public domain.\n") == []


@pytest.mark.parametrize("path,expected", [
    ("usr/share/backgrounds/Bridge_by_X.jpg", "CC-BY-SA-4.0"),        # file name only
    ("usr/share/demo/original-files/pic1/a.jpg", "CC-BY-SA-4.0"),      # trailing path
    ("usr/share/demo/original-files/pic1/logo.jpg", "LGPL-3+ or CC-BY-SA-3.0"),  # later wins
    ("usr/share/doc/HTML/en/demo/shot.png", "GFDL-1.2+"),             # KDE handbook
    ("usr/share/demo/other.png", "GPL-2+"),                           # Files: *
])
def test_license_for_dep5(path, expected):
    assert license_for(DEP5, path) == expected


def test_license_for_free_text():
    gpl = ("almost all software is GPL:\n  under the terms of the GNU General Public License as "
           "published by\n the Free Software Foundation; either version 2 of the License, or\n"
           " (at your option) any later version.\n Some icons are public domain.\n")
    assert license_for(gpl, "usr/share/x/a.jpg") == "GPL-2+"
    sections = ("Copyright (c) 2004 A:\n - brochure (br2)\nplaced into public domain.\n"
                "------------------------------------\n"
                "Copyright B:\n - other (xy)\nhttps://creativecommons.org/licenses/by-sa/3.0/\n")
    assert license_for(sections, "usr/share/t/templates/br2/moon.jpg") == "public-domain"
    assert license_for(sections, "usr/share/t/templates/xy/m.jpg") == "CC-BY-SA-3.0"
    assert license_for("no licence here", "a/b.png") == "unknown"
    assert license_for("Files: a/*\nLicense: MIT\n", "z/b.png") == "MIT"  # first License:


# ---------------------------------------------------------------------------------------------
# the whole pipeline on a tiny local package


def _photo(rng, w, h):
    """A smooth random colour field plus noise: every call gives a different picture."""
    from PIL import Image

    coarse = Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8))
    base = np.asarray(coarse.resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16)
    return np.clip(base + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def tiny_deb(tmp_path):
    if shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None:
        pytest.skip("dpkg-deb not available")
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: ldem-fake-images\nVersion: 1.2-3\nArchitecture: all\n"
        "Maintainer: nobody <nobody@example.org>\nDescription: fake\n")
    photos = root / "usr/share/fake/photos"
    photos.mkdir(parents=True)
    Image.fromarray(_photo(rng, 800, 600)).save(photos / "a.png")
    portrait = _photo(rng, 600, 900)[:, ::-1].copy()
    Image.fromarray(portrait).save(photos / "b_portrait.jpg", quality=95)
    Image.fromarray(np.ascontiguousarray(_photo(rng, 700, 500).transpose(1, 0, 2))).save(
        photos / "c.png")
    shutil.copy(photos / "a.png", photos / "a_copy.png")                 # byte duplicate
    Image.fromarray(_photo(rng, 200, 150)).save(photos / "tiny.png")     # too small
    Image.fromarray(_photo(rng, 500, 400)).save(photos / "d_small.png")  # train only
    simple = root / "usr/share/fake/simple"
    simple.mkdir(parents=True)
    flat = np.full((300, 1000, 3), 240, np.uint8)
    flat[100:200, 100:400] = (20, 60, 200)
    Image.fromarray(flat).save(simple / "flat.png")
    Image.fromarray(_photo(rng, 400, 300)).save(simple / "busy.png")     # not flat enough
    doc = root / "usr/share/doc/ldem-fake-images"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: CC0-1.0\n\nFiles: photos/c.png\n"
                                   "License: CC-BY-4.0\n")
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root),
                    str(cache / "debs/ldem-fake-images_1.2-3_all.deb")],
                   check=True, capture_output=True)
    return cache


def test_fetch_pipeline_offline(tiny_deb, monkeypatch):
    cache = tiny_deb
    S = datasets.Source
    monkeypatch.setattr(datasets, "PHOTO_SOURCES", (
        S("ldem-fake-images", "photo", ("usr/share/fake/photos/*",)),))
    monkeypatch.setattr(datasets, "SIMPLE_SOURCES", (
        S("ldem-fake-images", "simple", ("usr/share/fake/simple/*",), limit=5, min_flat=0.85),))
    monkeypatch.setattr(datasets, "DEV_PHOTO_COUNT", 2)
    m = datasets.fetch(cache, progress=False)
    by_split = {s: sorted(e["file"] for e in m["images"] if e["split"] == s)
                for s in datasets.SPLITS}
    assert len(by_split["dev_photos"]) == 2
    assert len(by_split["train"]) == 2   # 4 unique photos >= 384 px, 2 in dev
    assert by_split["dev_simple"] == ["dev/simple/ldem-fake-images--flat.png"]
    assert "dev/photos/ldem-fake-images--d_small.png" not in by_split["dev_photos"]
    sources = [e["source_path"] for e in m["images"] if e["split"] in ("train", "dev_photos")]
    assert len(set(sources)) == 4 and not any("tiny" in s for s in sources)
    for e in m["images"]:
        assert e["package_version"] == "1.2-3"
        assert e["license"] == ("CC-BY-4.0" if e["source_path"].endswith("c.png") else "CC0-1.0")
        path = cache / e["file"]
        with datasets.Image.open(path) as im:
            assert im.size == (e["width"], e["height"])
        if e["split"] == "dev_photos":
            assert im.size == (768, 512)
        if e["split"] == "train":
            assert max(im.size) <= 1024 and path.suffix == ".jpg"
        if e["split"] == "dev_simple":
            assert max(im.size) <= 768
    assert load_manifest(cache) == m
    # deterministic: a second run gives the same manifest
    assert datasets.fetch(cache, progress=False) == m


def test_missing_package_warns_and_continues(tmp_path, monkeypatch, capsys):
    pytest.importorskip("PIL")
    monkeypatch.setattr(datasets, "PHOTO_SOURCES", (
        datasets.Source("ldem-no-such-package", "photo", ("*",)),))
    monkeypatch.setattr(datasets, "SIMPLE_SOURCES", ())
    monkeypatch.setattr(datasets.shutil, "which", lambda name: None)  # no apt-get, no network
    with pytest.raises(RuntimeError, match="no images"):
        datasets.fetch(tmp_path, progress=False)
    assert "ldem-no-such-package" in capsys.readouterr().err


def test_python_package_photos(tmp_path, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    pkg = tmp_path / "site" / "ldemfakepkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    Image.fromarray(_photo(np.random.default_rng(2), 640, 480)).save(pkg / "data/p.jpg")
    Image.fromarray(_photo(np.random.default_rng(3), 64, 48)).save(pkg / "data/small.jpg")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(datasets, "PYTHON_PACKAGE_PHOTOS",
                        (("ldemfakepkg", "ldemfakepkg",
                          {"data/p.jpg": "CC0", "data/small.jpg": "CC0", "data/gone.jpg": "CC0"}),))
    items = datasets._python_package_items(progress=False)
    assert [(i.package, i.source_path, i.license) for i in items] == [
        ("pypi:ldemfakepkg", "ldemfakepkg/data/p.jpg", "CC0")]
    assert "ldemfakepkg" not in sys.modules
