"""Training and development images, fetched from Debian packages.

The images that ldem trains and evaluates on are not stored in the repository. They come
inside ordinary Debian packages (wallpapers, documentation screenshots, test data), which
``apt-get download`` fetches and ``dpkg -x`` unpacks without installing anything. This
module picks the images, normalises them and writes a cache::

    CACHE/
      debs/                  the downloaded .deb files (kept, so a second fetch is offline)
      dev/photos/*.png       24 natural photos, 768x512 (center crop to 3:2, Lanczos), like Kodak
      dev/simple/*.png       low-complexity images (screenshots, maps, plots, flat graphics,
                             text pages), at most 768 px on the longer side, never recompressed
      train/*.jpg            every other natural photo, longer side <= 1024, JPEG quality 95
      train_simple/*.png     more low-complexity images of the same sources as dev/simple
                             (the next ones by sha256; never the development images), for
                             the entropy models only, prepared like dev/simple
      manifest.json          one entry per image: package, version, path, licence, sha256, size

The cache is ``$LDEM_DATA`` if set, else ``~/.cache/ldem/data``. Build it once with::

    python benchmarks/fetch_data.py fetch [--cache DIR]

and use it from code (a benchmark script, or a test: ``ldem_bench`` is in ``benchmarks/``)::

    >>> from ldem_bench import datasets
    >>> paths = datasets.split_images("dev_photos")     # doctest: +SKIP
    >>> len(paths)                                      # doctest: +SKIP
    24

The output does not depend on download order: sources are processed in sorted order, and
every choice (which photos go to the development set, which low-complexity images are kept)
is made by sha256 of the source file bytes. Which files count as photographs was decided by
looking at each package's file list once; the rules are the ``PHOTO_SOURCES`` and
``SIMPLE_SOURCES`` tables below.

Licences vary per file (CC-BY, CC-BY-SA, CC0, GPL, public domain). Each manifest entry records
the licence that the package's ``usr/share/doc/PKG/copyright`` states for that file (best
effort: the DEP-5 ``Files:`` stanza that matches the file, else a guess from free text).
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

try:  # only fetch() needs Pillow; the manifest functions work without it
    from PIL import Image, ImageOps
except ImportError:  # pragma: no cover - depends on the environment
    Image = ImageOps = None

__all__ = [
    "SPLITS",
    "FETCH_COMMAND",
    "Source",
    "PHOTO_SOURCES",
    "SIMPLE_SOURCES",
    "default_cache",
    "fetch",
    "load_manifest",
    "split_images",
    "parse_copyright",
    "license_for",
]

#: The splits a manifest entry can belong to.
SPLITS = ("train", "dev_photos", "dev_simple", "train_simple")
#: The command that builds the cache (named in error messages).
FETCH_COMMAND = "python benchmarks/fetch_data.py fetch"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

DEV_PHOTO_COUNT = 24
DEV_PHOTO_SIZE = (768, 512)  # (width, height), the size of the Kodak images
TRAIN_MAX_SIDE = 1024
TRAIN_JPEG_QUALITY = 95
PHOTO_MIN_SIDE = 384
SIMPLE_MAX_SIDE = 768
SIMPLE_MIN_SIDE = 256
#: Screenshots, maps and plots must have at least this fraction of pixels equal to their
#: left neighbour; this drops the sky photographs and FITS frames among the screenshots.
SIMPLE_MIN_FLAT = 0.85
#: Low-complexity training images per limited simple source: the ones after the
#: development images in sha256 order.
TRAIN_SIMPLE_PER_SOURCE = 12
#: Photos whose 64-bit difference hashes differ in at most this many bits are one photo.
NEAR_DUPLICATE_BITS = 4

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pnm", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class Source:
    """Which files of one Debian package are used, and how.

    ``include``/``exclude`` are :func:`fnmatch.fnmatch` patterns on the path inside the package
    (``*`` also matches ``/``). ``kind`` is ``"photo"`` (natural photographs: train and
    dev_photos) or ``"simple"`` (low-complexity images: dev_simple). For simple sources,
    ``limit`` keeps that many images, the first by sha256 of the source bytes (up to
    ``TRAIN_SIMPLE_PER_SOURCE`` more, the next ones, go to train_simple); ``pdf_pages``
    renders that many pages of each matching PDF (only if ``pypdfium2`` is importable).
    """

    package: str
    kind: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    limit: int | None = None
    pdf_pages: int = 0
    min_flat: float = 0.0


#: Natural photographs. Excluded files are illustrations, renders, gradients or logos.
PHOTO_SOURCES: tuple[Source, ...] = (
    Source("digikam-data", "photo", ("usr/share/digikam/about/images/*.jpg",)),
    Source("forensics-samples-files", "photo",
           ("usr/share/forensics-samples/original-files/pic*/IMG*",)),
    Source("libjxl-testdata", "photo",
           ("usr/share/libjxl-testdata/jxl/flower/flower.png",
            "usr/share/libjxl-testdata/jxl/hdr_room.png",
            "usr/share/libjxl-testdata/external/wesaturate/500px/*_srgb8.png")),
    Source("lomiri-wallpapers-16.04", "photo", ("usr/share/backgrounds/*.jpg",),
           exclude=("*/umang_by_*",)),
    Source("lomiri-wallpapers-20.04", "photo", ("usr/share/backgrounds/*.jpg",),
           exclude=("*/Fossa_by_*", "*/Infinite-Sea_by_*", "*/Painting-Colors_by_*")),
    Source("lxqt-themes", "photo", ("usr/share/lxqt/wallpapers/*",),
           exclude=("*/kde-plasma.png", "*origami*", "*/plasma*", "*/simple_blue*",
                    "*/triangles*", "*/waves*")),
    Source("mate-backgrounds", "photo", ("usr/share/backgrounds/mate/nature/*",)),
    Source("palapeli-data", "photo", ("usr/share/palapeli/collection/*.jpg",)),
    Source("scribus-template", "photo", ("usr/share/scribus/templates/*.jpg",)),
    Source("tuxpaint-data", "photo", ("usr/share/tuxpaint/templates/*.jpg",)),
)

#: Low visual complexity: screenshots, flat-colour maps, plots, flat graphics, text pages.
SIMPLE_SOURCES: tuple[Source, ...] = (
    Source("kgeography-data", "simple", ("usr/share/kgeography/*.png",),
           exclude=("usr/share/kgeography/flags/*",), limit=7, min_flat=SIMPLE_MIN_FLAT),
    Source("kstars-data", "simple", ("usr/share/doc/HTML/en/*.png",), limit=7,
           min_flat=SIMPLE_MIN_FLAT),
    Source("octave-doc", "simple", ("usr/share/doc/octave/octave.html/*.png",), limit=6,
           min_flat=SIMPLE_MIN_FLAT),
    Source("octave-doc", "simple", ("usr/share/doc/octave/octave.pdf",), pdf_pages=4),
    Source("parley-data", "simple", ("usr/share/doc/HTML/en/*.png",), limit=7,
           min_flat=SIMPLE_MIN_FLAT),
    Source("ukui-wallpapers", "simple", ("usr/share/backgrounds/*",), limit=6,
           min_flat=SIMPLE_MIN_FLAT),
)

#: Optional extra training photos bundled with Python packages (never used for dev sets,
#: so that the development sets do not depend on what happens to be installed). Only read
#: when ``fetch(python_packages=True)`` / ``--with-python-packages`` and the package is
#: present; the package is located, not imported. ``(module, distribution, {file: licence})``,
#: with the licences as the packages' own docs state them.
PYTHON_PACKAGE_PHOTOS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("skimage", "scikit-image", {
        "data/astronaut.png": "public-domain (NASA)",
        "data/chelsea.png": "CC0",
        "data/coffee.png": "CC0",
        "data/rocket.jpg": "public-domain (SpaceX)",
    }),
    ("sklearn", "scikit-learn", {
        "datasets/images/china.jpg": "CC-BY-2.0",
        "datasets/images/flower.jpg": "CC-BY-2.0",
    }),
    ("matplotlib", "matplotlib", {
        "mpl-data/sample_data/grace_hopper.jpg": "public-domain (U.S. Navy)",
    }),
)


# --------------------------------------------------------------------------------------------
# cache and manifest


def default_cache() -> Path:
    """The cache directory: ``$LDEM_DATA`` if set, else ``~/.cache/ldem/data``.

    >>> default_cache().parts[-3:] if "LDEM_DATA" not in os.environ else ('.cache', 'ldem', 'data')
    ('.cache', 'ldem', 'data')
    """
    env = os.environ.get("LDEM_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ldem" / "data"


def _missing(cache: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} not found in the ldem data cache {cache}. Build the cache with "
        f"`{FETCH_COMMAND} --cache {cache}` (or set LDEM_DATA to where it already is)."
    )


def load_manifest(cache: str | os.PathLike | None = None) -> dict:
    """Read ``CACHE/manifest.json``.

    Returns ``{"format": 1, "images": [entry, ...]}``; each entry has ``file`` (relative to the
    cache), ``split``, ``package``, ``package_version``, ``source_path``, ``license``,
    ``sha256`` (of the output file), ``width`` and ``height``.

    >>> m = load_manifest()                                          # doctest: +SKIP
    >>> sorted({e["split"] for e in m["images"]})                    # doctest: +SKIP
    ['dev_photos', 'dev_simple', 'train']

    Raises FileNotFoundError (naming the fetch command) if the cache has not been built.
    """
    cache = Path(cache).expanduser() if cache is not None else default_cache()
    path = cache / MANIFEST_NAME
    if not path.is_file():
        raise _missing(cache, MANIFEST_NAME)
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("images"), list):
        raise ValueError(f"{path} is not an ldem data manifest; rebuild it with `{FETCH_COMMAND}`")
    return manifest


def split_images(split: str, cache: str | os.PathLike | None = None) -> list[Path]:
    """Absolute paths of the images of one split, sorted by file name.

    ``split`` is one of ``"train"``, ``"dev_photos"``, ``"dev_simple"``.

    >>> for p in split_images("dev_simple")[:2]:                      # doctest: +SKIP
    ...     print(p.name)
    kgeography-data--africa.png
    kgeography-data--brazil.png

    Raises ValueError for an unknown split and FileNotFoundError (naming the fetch command)
    if the manifest or any listed image is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    cache = Path(cache).expanduser() if cache is not None else default_cache()
    manifest = load_manifest(cache)
    paths = sorted(cache / e["file"] for e in manifest["images"] if e.get("split") == split)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise _missing(cache, f"{len(missing)} image(s) of split {split!r}, e.g. {missing[0]},")
    return paths


# --------------------------------------------------------------------------------------------
# licences


def parse_copyright(text: str) -> list[tuple[tuple[str, ...], str]]:
    """Parse a machine-readable (DEP-5) ``debian/copyright`` into ``[(patterns, licence)]``.

    Only ``Files:`` stanzas are returned, in file order; the licence is the first line of
    the stanza's ``License:`` field. Returns ``[]`` for a free-text copyright file.

    >>> text = "Files: *\\nLicense: GPL-2+\\n\\nFiles: doc/*\\n  po/*\\nLicense: GFDL-1.2+\\n"
    >>> parse_copyright(text)
    [(('*',), 'GPL-2+'), (('doc/*', 'po/*'), 'GFDL-1.2+')]
    """
    stanzas: list[tuple[tuple[str, ...], str]] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if not line.strip() or line.startswith("#"):
                continue
            if line[0] in " \t":
                if key is not None:
                    fields[key] += "\n" + line.strip()
                continue
            m = re.match(r"([A-Za-z0-9-]+):(.*)$", line)
            if m:
                key = m.group(1).lower()
                fields[key] = m.group(2).strip()
        if "files" in fields:
            patterns = tuple(p for p in fields["files"].split() if p)
            licence = fields.get("license", "").split("\n")[0].strip()
            stanzas.append((patterns, licence))
    return stanzas


_FREE_TEXT_LICENCES = (
    (re.compile(r"public domain", re.I), "public-domain"),
    (re.compile(r"creativecommons\.org/licenses/by-sa/(\d\.\d)", re.I), "CC-BY-SA-{0}"),
    (re.compile(r"creativecommons\.org/licenses/by/(\d\.\d)", re.I), "CC-BY-{0}"),
    (re.compile(r"creativecommons\.org/publicdomain/zero", re.I), "CC0-1.0"),
    (re.compile(r"GNU (?:Lesser|Library) General Public License.{0,200}?version (\d(?:\.\d)?)"
                r"(.{0,120}?any later version)?", re.I | re.S), "LGPL-{0}"),
    (re.compile(r"GNU General Public License.{0,200}?version (\d)(.{0,120}?any later version)?",
                re.I | re.S), "GPL-{0}"),
)


def _guess_free_text(text: str) -> str | None:
    """The licence phrase that occurs first in ``text``, as a short name."""
    best = None
    for pattern, fmt in _FREE_TEXT_LICENCES:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[0]):
            groups = m.groups()
            name = fmt.format(*groups) if groups else fmt
            if len(groups) > 1 and groups[1]:
                name += "+"
            best = (m.start(), name)
    return best[1] if best else None


def _pattern_score(pattern: str, path: str) -> int:
    """How well a DEP-5 ``Files:`` pattern (source-tree path) matches an installed path."""
    if pattern in ("*", "./*"):
        return 1
    pattern = pattern.removeprefix("./")
    parts = path.split("/")
    for i in range(len(parts)):
        if fnmatch.fnmatchcase("/".join(parts[i:]), pattern):
            return 3
    base = pattern.rsplit("/", 1)[-1]
    if base not in ("*", "") and fnmatch.fnmatchcase(parts[-1], base):
        return 2
    return 0


def license_for(copyright_text: str, source_path: str) -> str:
    """Best-effort licence of one installed file, from its package's copyright file.

    DEP-5 files: ``Files:`` patterns name paths in the source tree, not where files are
    installed, so a pattern matches if it matches a trailing part of the installed path
    (``wallpapers/x.png`` matches ``usr/share/lxqt/wallpapers/x.png``), or, failing that, its
    file-name part matches the file name (``16.04/x.jpg`` matches ``usr/share/backgrounds/x.jpg``).
    The best match wins, the later stanza among equals (as in DEP-5); ``Files: *`` is the
    fallback. Files of a KDE handbook (``usr/share/doc/HTML/LANG/...``) also try the source
    folders ``doc/`` and ``docs/``. Free-text files: the paragraph that names one of the
    path's directories in parentheses, else the whole text, is searched for a licence
    phrase. Returns ``"unknown"`` if nothing is found.

    >>> text = "Files: *\\nLicense: GPL-2+\\n\\nFiles: 16.04/Bridge.jpg\\nLicense: CC-BY-SA-4.0\\n"
    >>> license_for(text, "usr/share/backgrounds/Bridge.jpg")
    'CC-BY-SA-4.0'
    >>> license_for(text, "usr/share/backgrounds/Other.jpg")
    'GPL-2+'
    """
    path = source_path.removeprefix("./")
    stanzas = parse_copyright(copyright_text)
    if stanzas:
        paths = [path]
        m = re.match(r"usr/share/doc/HTML/[^/]+/(.+)$", path)
        if m:  # KDE handbooks: doc/ or docs/ in the source tree
            paths += [f"doc/{m.group(1)}", f"docs/{m.group(1)}"]
        best, best_score = None, 0
        for patterns, licence in stanzas:
            score = max((_pattern_score(p, q) for p in patterns for q in paths), default=0)
            if score and score >= best_score and licence:
                best, best_score = licence, score
        if best:
            return best
        first = re.search(r"^License:[ \t]*(\S.*)$", copyright_text, re.M)
        return first.group(1).strip() if first else "unknown"
    # free text: prefer the section that names one of the file's directories, e.g. "(br2)"
    sections = re.split(r"\n-{5,}\n", copyright_text)
    dirs = [d for d in path.split("/")[:-1] if d]
    for section in sections:
        if any(f"({d})" in section for d in dirs):
            guess = _guess_free_text(section)
            if guess:
                return guess
    return _guess_free_text(copyright_text) or "unknown"


def _sibling_licence(path: Path) -> str | None:
    """A licence named by a ``License``/``LICENSE``/``COPYING`` file next to the image."""
    for name in ("License", "LICENSE", "License.txt", "LICENSE.txt", "COPYING"):
        f = path.parent / name
        if f.is_file():
            try:
                text = f.read_text(encoding="utf-8", errors="replace")[:20000]
            except OSError:
                return None
            return _guess_free_text(text)
    return None


# --------------------------------------------------------------------------------------------
# images


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white and 16-bit samples reduced to 8 bits."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im, dtype=np.int64)
        hi = 65535 if a.max(initial=0) > 255 else 255
        a = np.clip(np.round(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        im = Image.fromarray(a, "L")
    transparent = im.mode in ("P", "L", "RGB") and "transparency" in im.info
    if im.mode in ("RGBA", "LA", "PA") or transparent:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        bg.alpha_composite(rgba)
        return bg.convert("RGB")
    return im.convert("RGB")


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    return _to_rgb(im)


def _flatness(im: Image.Image) -> float:
    """Fraction of pixels equal (in all channels) to their left neighbour."""
    a = np.asarray(im)
    if a.shape[1] < 2:
        return 1.0
    return float(np.all(a[:, 1:] == a[:, :-1], axis=2).mean())


def _dhash(im: Image.Image) -> int:
    g = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def _dev_photo(im: Image.Image) -> Image.Image | None:
    """768x512 landscape: rotate portrait, center crop to 3:2, Lanczos. None if too small."""
    if im.height > im.width:
        im = im.transpose(Image.Transpose.ROTATE_90)
    w, h = im.size
    tw, th = DEV_PHOTO_SIZE
    if w * th > h * tw:  # too wide
        cw, ch = round(h * tw / th), h
    else:
        cw, ch = w, round(w * th / tw)
    if cw < tw or ch < th:
        return None
    left, top = (w - cw) // 2, (h - ch) // 2
    im = im.crop((left, top, left + cw, top + ch))
    return im.resize(DEV_PHOTO_SIZE, Image.Resampling.LANCZOS)


def _train_photo(im: Image.Image) -> Image.Image:
    w, h = im.size
    if max(w, h) <= TRAIN_MAX_SIDE:
        return im
    s = TRAIN_MAX_SIDE / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return im.resize(size, Image.Resampling.LANCZOS)


def _fit_simple(im: Image.Image) -> Image.Image:
    """At most SIMPLE_MAX_SIDE px per side without blurring flat content.

    Up to 1.5x too large: center crop (screen content stays pixel-exact). Larger: integer
    box reduction (flat regions stay exactly flat), then a center crop if still needed.
    """
    w, h = im.size
    if max(w, h) > SIMPLE_MAX_SIDE * 3 // 2:
        k = math.ceil(max(w, h) / SIMPLE_MAX_SIDE)
        im = im.reduce(k)
        w, h = im.size
    cw, ch = min(w, SIMPLE_MAX_SIDE), min(h, SIMPLE_MAX_SIDE)
    if (cw, ch) != (w, h):
        left, top = (w - cw) // 2, (h - ch) // 2
        im = im.crop((left, top, left + cw, top + ch))
    return im


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=TRAIN_JPEG_QUALITY, subsampling=0, optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Debian packages


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _find_deb(debs: Path, package: str) -> Path | None:
    found = sorted(debs.glob(f"{package}_*.deb"))
    return found[-1] if found else None


def _download(debs: Path, package: str, progress: bool) -> Path | None:
    deb = _find_deb(debs, package)
    if deb is not None:
        return deb
    if shutil.which("apt-get") is None:
        _warn(f"cannot download {package}: apt-get not found (put {package}_*.deb in {debs})")
        return None
    _log(progress, f"downloading {package}")
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{package}-", dir=debs))
    try:
        r = subprocess.run(["apt-get", "download", package], cwd=partial, capture_output=True,
                           text=True, env={**os.environ, "LC_ALL": "C"})
        got = sorted(partial.glob(f"{package}_*.deb"))
        if r.returncode != 0 or not got:
            err = (r.stderr.strip().splitlines() or ["no .deb produced"])[-1]
            _warn(f"cannot download {package}: {err} (try `apt-get update` first)")
            return None
        target = debs / got[-1].name
        os.replace(got[-1], target)
        return target
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _deb_version(deb: Path) -> str:
    if shutil.which("dpkg-deb"):
        r = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    parts = urllib.parse.unquote(deb.name).split("_")
    return parts[1] if len(parts) >= 3 else "unknown"


def _extract(deb: Path, dest: Path) -> None:
    subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True, capture_output=True)


@dataclass
class _Item:
    """One chosen source image, kept in memory until the outputs are written."""

    package: str
    version: str
    source_path: str
    license: str
    source_sha256: str
    image: Image.Image
    kind: str
    dhash: int = 0
    extra: dict = field(default_factory=dict)


def _matches(source: Source, rel: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in source.include) and not any(
        fnmatch.fnmatchcase(rel, p) for p in source.exclude)


def _walk(root: Path) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.is_symlink() or not p.is_file():
                continue
            yield p.relative_to(root).as_posix()


def _render_pdf_pages(pdf_path: Path, count: int) -> list[tuple[int, Image.Image]]:
    """``count`` pages spread over the document at 100 dpi, skipping near-blank pages."""
    try:
        import pypdfium2 as pdfium  # optional
    except ImportError:
        return []
    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        n = len(pdf)
        pages: list[tuple[int, Image.Image]] = []
        for j in range(count):
            start = (2 * j + 1) * n // (2 * count)
            for i in range(start, min(n, start + 10)):
                page = pdf[i]
                im = page.render(scale=100 / 72).to_pil().convert("RGB")
                page.close()
                # a page with text has at least 2 % non-white pixels
                if (np.asarray(im.convert("L")) < 250).mean() >= 0.02:
                    pages.append((i, im))
                    break
        return pages
    finally:
        pdf.close()


def _collect_package(deb: Path, sources: list[Source], progress: bool) -> list[_Item]:
    package = sources[0].package
    version = _deb_version(deb)
    items: list[_Item] = []
    with tempfile.TemporaryDirectory(prefix=f"ldem-{package}-") as tmp:
        root = Path(tmp)
        try:
            _extract(deb, root)
        except (subprocess.CalledProcessError, OSError) as e:
            _warn(f"cannot extract {deb.name}: {e}")
            return []
        cfile = root / "usr/share/doc" / package / "copyright"
        ctext = cfile.read_text(encoding="utf-8", errors="replace") if cfile.is_file() else ""
        files = list(_walk(root))
        for source in sources:
            chosen = [f for f in files if _matches(source, f)]
            if source.pdf_pages:
                for rel in chosen:
                    if not rel.lower().endswith(".pdf"):
                        continue
                    pages = _render_pdf_pages(root / rel, source.pdf_pages)
                    if not pages:
                        _log(progress, f"  {package}: pypdfium2 not importable, no PDF pages")
                    for i, im in pages:
                        data_sha = _sha256((root / rel).read_bytes() + f"#page={i + 1}".encode())
                        items.append(_Item(package, version, f"{rel}#page={i + 1}",
                                           license_for(ctext, rel), data_sha, im, "simple"))
                continue
            found: list[_Item] = []
            seen: set[str] = set()
            for rel in chosen:
                if not rel.lower().endswith(_IMAGE_SUFFIXES):
                    continue
                data = (root / rel).read_bytes()
                sha = _sha256(data)
                if sha in seen:
                    continue
                try:
                    im = _open(data)
                except Exception as e:  # noqa: BLE001 - a broken file is skipped, not fatal
                    _log(progress, f"  skip {rel}: {e}")
                    continue
                min_side = PHOTO_MIN_SIDE if source.kind == "photo" else SIMPLE_MIN_SIDE
                if min(im.size) < min_side:
                    continue
                if source.min_flat and _flatness(im) < source.min_flat:
                    continue
                seen.add(sha)
                lic = _sibling_licence(root / rel) or license_for(ctext, rel)
                found.append(_Item(package, version, rel, lic, sha, im, source.kind))
            if source.limit is not None:
                found = sorted(found, key=lambda it: it.source_sha256)
                extra = found[source.limit: source.limit + TRAIN_SIMPLE_PER_SOURCE]
                found = found[: source.limit]
                if source.kind == "simple":
                    items.extend(_Item(it.package, it.version, it.source_path, it.license, it.source_sha256,
                                       it.image, "simple_train") for it in extra)
            items.extend(found)
    _log(progress, f"  {package} {version}: {len(items)} image(s)")
    return items


def _python_package_items(progress: bool) -> list[_Item]:
    import importlib.metadata
    import importlib.util

    items: list[_Item] = []
    for module, dist, files in PYTHON_PACKAGE_PHOTOS:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        for rel, lic in sorted(files.items()):
            if not (root / rel).is_file():
                continue
            data = (root / rel).read_bytes()
            try:
                im = _open(data)
            except Exception:  # noqa: BLE001
                continue
            if min(im.size) < PHOTO_MIN_SIDE:
                continue
            items.append(_Item(f"pypi:{dist}", version, f"{module}/{rel}", lic, _sha256(data),
                               im, "photo", extra={"python_package": True}))
        count = sum(i.package == f"pypi:{dist}" for i in items)
        _log(progress, f"  {dist} {version}: {count} image(s)")
    return items


# --------------------------------------------------------------------------------------------
# fetch


def _dedupe_photos(photos: list[_Item], progress: bool) -> list[_Item]:
    """Drop byte-identical files, then near-duplicates (keeping the larger image)."""
    by_sha: dict[str, _Item] = {}
    for it in photos:
        by_sha.setdefault(it.source_sha256, it)
    unique = list(by_sha.values())
    for it in unique:
        it.dhash = _dhash(it.image)
    order = sorted(unique, key=lambda it: (-it.image.width * it.image.height, it.package,
                                           it.source_path))
    kept: list[_Item] = []
    for it in order:
        dup = next((k for k in kept if bin(k.dhash ^ it.dhash).count("1") <= NEAR_DUPLICATE_BITS),
                   None)
        if dup is not None:
            _log(progress, f"  near-duplicate: {it.package}/{it.source_path} ~ "
                           f"{dup.package}/{dup.source_path}")
            continue
        kept.append(it)
    return sorted(kept, key=lambda it: (it.package, it.source_path))


def _choose_dev(photos: list[_Item], count: int) -> set[str]:
    """Round-robin over packages (sorted by name); in each package, by source sha256.

    Only photos large enough for a 768x512 crop without upscaling are eligible; photos from
    Python packages never are. Returns the source sha256 of the chosen photos.
    """
    queues: dict[str, list[_Item]] = {}
    for it in photos:
        if it.extra.get("python_package"):
            continue
        w, h = max(it.image.size), min(it.image.size)
        tw, th = DEV_PHOTO_SIZE
        cw, ch = (round(h * tw / th), h) if w * th > h * tw else (w, round(w * th / tw))
        if cw >= tw and ch >= th:
            queues.setdefault(it.package, []).append(it)
    for q in queues.values():
        q.sort(key=lambda it: it.source_sha256)
    chosen: list[str] = []
    rnd = 0
    while len(chosen) < count and any(len(q) > rnd for q in queues.values()):
        for pkg in sorted(queues):
            if len(chosen) < count and len(queues[pkg]) > rnd:
                chosen.append(queues[pkg][rnd].source_sha256)
        rnd += 1
    return set(chosen)


def _stem(it: _Item) -> str:
    name = it.source_path.rsplit("/", 1)[-1]
    page = ""
    if "#page=" in name:
        name, page = name.split("#page=")
        page = f"-p{int(page):04d}"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rsplit(".", 1)[0]) + page
    pkg = re.sub(r"[^A-Za-z0-9._-]+", "_", it.package)
    return f"{pkg}--{stem}"


def _names(items: list[_Item], suffix: str) -> list[str]:
    stems = [_stem(it) for it in items]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    return [(s if counts[s] == 1 else f"{s}-{it.source_sha256[:8]}") + suffix
            for s, it in zip(stems, items)]


def fetch(cache: str | os.PathLike | None = None, progress: bool = True, *,
          python_packages: bool = False) -> dict:
    """Download the Debian packages, pick and normalise the images, write the cache.

    Packages already in ``CACHE/debs`` are not downloaded again; a package that cannot be
    downloaded is skipped with a warning on stderr. Previous outputs (``dev/``, ``train/``,
    ``manifest.json``) are replaced. With ``python_packages=True`` the photos bundled with
    scikit-image, scikit-learn and matplotlib, where installed, are added to ``train``.
    Returns the manifest (see :func:`load_manifest`).

    >>> manifest = fetch("/tmp/ldem-data")                            # doctest: +SKIP
    >>> sum(e["split"] == "dev_photos" for e in manifest["images"])   # doctest: +SKIP
    24
    """
    if Image is None:
        raise RuntimeError("fetching images needs Pillow: pip install pillow")
    cache = Path(cache).expanduser() if cache is not None else default_cache()
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # wallpapers reach 6000x4000; inputs come from Debian packages
    try:
        return _fetch(cache, progress, python_packages)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _fetch(cache: Path, progress: bool, python_packages: bool) -> dict:
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)

    by_package: dict[str, list[Source]] = {}
    for s in PHOTO_SOURCES + SIMPLE_SOURCES:
        by_package.setdefault(s.package, []).append(s)

    items: list[_Item] = []
    for package in sorted(by_package):
        deb = _download(debs, package, progress)
        if deb is None:
            continue
        _log(progress, f"reading {deb.name}")
        items.extend(_collect_package(deb, by_package[package], progress))
    if python_packages:
        items.extend(_python_package_items(progress))
    if not items:
        raise RuntimeError(f"no images collected: no package could be downloaded into {debs}")

    photos = _dedupe_photos([it for it in items if it.kind == "photo"], progress)
    simple_by_sha: dict[str, _Item] = {}
    for it in sorted((it for it in items if it.kind == "simple"),
                     key=lambda it: (it.package, it.source_path)):
        simple_by_sha.setdefault(it.source_sha256, it)
    simple = list(simple_by_sha.values())
    simple_train = sorted((it for it in items if it.kind == "simple_train" and it.source_sha256 not in simple_by_sha),
                          key=lambda it: (it.package, it.source_path))
    simple_train = list({it.source_sha256: it for it in simple_train}.values())
    dev_shas = _choose_dev(photos, DEV_PHOTO_COUNT)
    if len(dev_shas) < DEV_PHOTO_COUNT:
        _warn(f"only {len(dev_shas)} development photos (wanted {DEV_PHOTO_COUNT})")

    # write outputs
    for sub in ("dev/photos", "dev/simple", "train", "train_simple"):
        d = cache / sub
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    (cache / MANIFEST_NAME).unlink(missing_ok=True)

    entries: list[dict] = []

    def emit(it: _Item, split: str, rel: str, data: bytes, im: Image.Image) -> None:
        (cache / rel).write_bytes(data)
        entries.append({
            "file": rel, "split": split, "package": it.package,
            "package_version": it.version, "source_path": it.source_path,
            "source_sha256": it.source_sha256, "license": it.license,
            "sha256": _sha256(data), "width": im.width, "height": im.height,
        })

    dev = [it for it in photos if it.source_sha256 in dev_shas]
    train = [it for it in photos if it.source_sha256 not in dev_shas]
    _log(progress, f"writing {len(dev)} dev photos, {len(train)} training photos, "
                   f"{len(simple)} low-complexity images")
    for it, name in zip(dev, _names(dev, ".png")):
        im = _dev_photo(it.image)
        assert im is not None  # eligibility was checked in _choose_dev
        emit(it, "dev_photos", f"dev/photos/{name}", _png_bytes(im), im)
    for it, name in zip(train, _names(train, ".jpg")):
        im = _train_photo(it.image)
        emit(it, "train", f"train/{name}", _jpeg_bytes(im), im)
    for it, name in zip(simple, _names(simple, ".png")):
        im = _fit_simple(it.image)
        emit(it, "dev_simple", f"dev/simple/{name}", _png_bytes(im), im)
    for it, name in zip(simple_train, _names(simple_train, ".png")):
        im = _fit_simple(it.image)
        emit(it, "train_simple", f"train_simple/{name}", _png_bytes(im), im)

    entries.sort(key=lambda e: (SPLITS.index(e["split"]), e["file"]))
    manifest = {"format": MANIFEST_FORMAT, "images": entries}
    tmp = cache / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, cache / MANIFEST_NAME)
    return manifest


def _summary(manifest: dict, cache: Path) -> str:
    lines = []
    for split in SPLITS:
        es = [e for e in manifest["images"] if e["split"] == split]
        size = sum((cache / e["file"]).stat().st_size for e in es if (cache / e["file"]).is_file())
        pkgs = len({e["package"] for e in es})
        lines.append(f"{split:>10}: {len(es):4d} images from {pkgs:2d} packages, "
                     f"{size / 2**20:7.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/fetch_data.py",
        description="Fetch ldem's training and development images from Debian packages.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download packages and build the image cache")
    p_info = sub.add_parser("info", help="summarise an existing cache")
    for p in (p_fetch, p_info):
        p.add_argument("--cache", type=Path, default=None,
                       help="cache directory (default: $LDEM_DATA or ~/.cache/ldem/data)")
    p_fetch.add_argument("--quiet", action="store_true", help="print warnings only")
    p_fetch.add_argument("--with-python-packages", action="store_true",
                         help="also add photos bundled with scikit-image, scikit-learn and "
                              "matplotlib (if installed) to the training split")
    args = parser.parse_args(argv)
    cache = args.cache.expanduser() if args.cache is not None else default_cache()
    try:
        if args.command == "fetch":
            manifest = fetch(cache, progress=not args.quiet,
                             python_packages=args.with_python_packages)
        else:
            manifest = load_manifest(cache)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{cache}:")
    print(_summary(manifest, cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
