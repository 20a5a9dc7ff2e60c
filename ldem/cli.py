"""The ``ldem`` command: compress, decompress, info, demo, train, export, eval.

User errors (a missing or corrupt file, a bad quality) print one line on stderr and exit
with status 1; usage errors exit with 2.

Outputs are written through a temporary file and renamed; an existing output is kept
unless ``-f/--force`` is given, and an output that is the input is always refused. ``-``
reads standard input or writes standard output. ``--max-pixels`` bounds the image on
both sides (a file is read back at the settings that wrote it), and ``.ldem`` inputs are
read up to 32 bits per pixel of that limit.

Examples::

    ldem demo
    ldem compress photo.png photo.ldem -q 3 --entropy local
    ldem info photo.ldem
    ldem decompress photo.ldem photo-decoded.png
    cat photo.ldem | ldem decompress - - --format png > decoded.png
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def _ldem_byte_limit(max_pixels: int) -> int:
    """The most bytes a ``.ldem`` input may have: 32 bits per pixel at ``max_pixels``
    (16 times the highest shipped rate), and at least 64 MiB."""
    return max(64 << 20, 4 * max_pixels)


def _read(path, max_pixels: int) -> bytes:
    """A ``.ldem`` input (a path, or ``-`` for standard input), read within its byte limit."""
    from ldem.files import read_bounded
    return read_bounded(path, _ldem_byte_limit(max_pixels), what=".ldem input")


def _image_input(path, max_pixels: int):
    from ldem.codec import open_image
    from ldem.files import STDIO, read_bounded
    if path == STDIO:  # an image file may hold up to 8 bytes per pixel, uncompressed
        return open_image(read_bounded(path, max(64 << 20, 8 * max_pixels), what="image input"),
                          max_pixels=max_pixels, name="standard input")
    return open_image(path, max_pixels=max_pixels)


def _check_output(args):
    """Refuses, before any work, an output that is the input or exists without --force."""
    from ldem.files import check_output
    check_output(args.output, force=args.force, inputs=[args.input])


def _progress(enabled: bool, what: str):
    """A progress callback (done, total) that draws a bar on a terminal's stderr, or None."""
    if not enabled or not sys.stderr.isatty():
        return None
    from ldem._optional import require
    tqdm = require("ldem", "tqdm").tqdm
    bar = {}

    def update(done, total):
        if total <= 1:
            return
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=what, unit="tile", leave=False, file=sys.stderr)
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar["bar"].close()
    return update


def _codec_for(data: bytes, args):
    from ldem.codec import ImageCodec
    return ImageCodec.for_file(data, args.model, max_pixels=args.max_pixels, max_model_bytes=args.max_model_bytes)


def cmd_compress(args) -> int:
    from ldem.codec import ImageCodec, pretrained_path
    from ldem.files import write_atomic
    _check_output(args)
    image = _image_input(args.input, args.max_pixels)
    codec = ImageCodec.load(args.model or pretrained_path(), args.quality, max_pixels=args.max_pixels,
                            max_model_bytes=args.max_model_bytes)
    data, stats = codec.compress(image, entropy=args.entropy, return_stats=True,
                                 progress=_progress(not args.quiet, "analysis"), effort=args.effort)
    write_atomic(args.output, data, force=args.force, inputs=[args.input])
    _say(args, f"{args.output}: {len(data)} bytes, {stats['bpp']:.4f} bpp ({image.width}×{image.height}, "
               f"quality {args.quality}, entropy {stats['mode']}"
               f"{_mode_note(stats['mode'], args.entropy, codec.coder.static is not None)})")
    return 0


def _mode_note(mode: str, asked: str, has_static: bool = True) -> str:
    """Why the coded entropy mode differs from the one asked for ('' when it does not).

    >>> _mode_note("global", "local")
    '; local asked: global is smaller for this image (a block map would cost more than it saves)'

    The local coder never writes a stream larger than the global mode's: it keeps the
    global stream whenever that is smaller, as on tiny latents where the block map and
    image tables cost more than they save. Static mode without a static dictionary in
    the model is global mode.
    """
    if mode == asked:
        return ""
    if asked == "static" and not has_static:
        return "; static asked: this quality of the model has no static dictionary"
    return f"; {asked} asked: {mode} is smaller for this image (a block map would cost more than it saves)"


def _image_format(args) -> str:
    from ldem._optional import require
    Image = require("ldem decompress", "PIL.Image")
    Image.init()  # registers every plugin's writer
    if args.format:
        fmt = args.format.upper()
        if fmt not in Image.SAVE:
            raise UserError(f"--format {args.format}: Pillow cannot write this format")
        return fmt
    if args.output == "-":
        return "PNG"
    ext = Path(args.output).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise UserError(f"{args.output}: cannot write this image format (unknown extension {ext or 'none'}; "
                        f"use --format)")
    return fmt


# Formats that Pillow writes lossily by default: the decoded pixels are re-encoded.
LOSSY_FORMATS = ("JPEG", "MPO", "WEBP", "AVIF")


def cmd_decompress(args) -> int:
    import io
    from ldem._optional import require
    from ldem.files import write_atomic
    Image = require("ldem decompress", "PIL.Image")
    _check_output(args)
    fmt = _image_format(args)
    data = _read(args.input, args.max_pixels)
    codec = _codec_for(data, args)
    pixels = codec.decompress_array(data, progress=_progress(not args.quiet, "synthesis"))
    buf = io.BytesIO()
    lossy = fmt in LOSSY_FORMATS
    try:
        Image.fromarray(pixels).save(buf, format=fmt, **({"quality": args.output_quality} if lossy else {}))
    except (ValueError, KeyError, OSError) as e:
        raise UserError(f"{args.output}: cannot write this image as {fmt} ({e})") from None
    write_atomic(args.output, buf.getvalue(), force=args.force, inputs=[args.input])
    if lossy and not args.quiet:
        print(f"ldem: note: {fmt} is lossy: the decoded image was re-encoded at quality {args.output_quality} "
              f"(--output-quality; PNG keeps the decoded pixels exactly)", file=sys.stderr)
    _say(args, f"{args.output}: {pixels.shape[1]}×{pixels.shape[0]}")
    return 0


def _say(args, line: str):
    """Reports on stdout, or on stderr when stdout carries the output."""
    if not args.quiet:
        print(line, file=sys.stderr if args.output == "-" else sys.stdout)


def cmd_info(args) -> int:
    data = _read(args.input, args.max_pixels)
    codec = _codec_for(data, args)
    info = codec.info(data)
    n = info["width"] * info["height"]
    print(f"file            {args.input}")
    print(f"format version  {info['version']}")
    print(f"model           {info['model_id']}  quality {info['quality']} of {codec.num_qualities}")
    t, level = codec.transforms_set, codec.level
    cfg = codec.bundle.configs[t]
    if codec.is_block_transform:
        print(f"transforms      set {t} (of {len(codec.bundle.configs)}; block transform, KLT of 8×8 RGB blocks), "
              f"level {level + 1} of {len(cfg['steps'])} (step {cfg['steps'][level]:g})")
    else:
        print(f"transforms      set {t} (of {len(codec.bundle.configs)}; N={cfg['N']}, M={cfg['M']}), "
              f"trained level {level + 1} of {len(cfg['lambdas'])} (λ={cfg['lambdas'][level]})")
    print(f"image           {info['width']}×{info['height']}")
    C, H, W = info["latent_shape"]
    print(f"latent          {C} channels of {H}×{W}")
    print(f"entropy         {_entropy_line(info)}")
    parts = [("file header", info["header_bytes"]), ("stream header", info["latent_bytes_header"]),
             ("image tables + map counts", info["latent_bytes_side_tables_and_map_counts"]),
             ("block map", info["latent_bytes_block_map"]), ("latent data", info["latent_bytes_data"])]
    print(f"{'part':<26} {'bytes':>9} {'bits/pixel':>11} {'share':>7}")
    for name, b in parts:
        print(f"{name:<26} {b:>9} {8 * b / n:>11.4f} {100 * b / info['bytes']:>6.2f}%")
    print(f"{'total':<26} {info['bytes']:>9} {info['bpp']:>11.4f} {100.0:>6.2f}%")
    return 0


def _entropy_line(info: dict) -> str:
    """The entropy mode of a ``.ldem`` file and, for block modes, the block size and grid.

    >>> _entropy_line({"latent_mode": "local", "latent_shape": (192, 30, 40), "latent_block": (30, 32),
    ...                "latent_num_image_models": 3, "latent_map_codec": "deflate"})
    'local, blocks of 30×32 latent samples: 1×2 per channel, 384 in all; 3 image models; block map by deflate'
    >>> _entropy_line({"latent_mode": "local", "latent_shape": (192, 32, 48), "latent_block": (8, 8),
    ...                "latent_partition_depth": 2, "latent_num_image_models": 0, "latent_map_codec": "rans",
    ...                "latent_contexts": True})
    'local, quadtrees over blocks of 32×32 latent samples (1×2 per channel), down to 8×8; 0 image models; leaves coded by rans; causal contexts'
    """
    mode = info["latent_mode"]
    if not info["latent_block"]:
        return (f"{mode}: one model per latent channel, no block map (chosen by --entropy global, or by "
                f"static/local when it is smaller)" + ("; causal contexts" if info.get("latent_contexts") else ""))
    from ldem.coder import block_grid
    (bh, bw), shape = info["latent_block"], info["latent_shape"]
    depth = info.get("latent_partition_depth") or 0
    if depth:
        C, nby, nbx = block_grid(shape, (bh << depth, bw << depth))
        return (f"{mode}, quadtrees over blocks of {bh << depth}×{bw << depth} latent samples ({nby}×{nbx} per "
                f"channel), down to {bh}×{bw}; {info['latent_num_image_models']} image models; leaves coded by "
                f"{info['latent_map_codec']}" + ("; causal contexts" if info.get("latent_contexts") else ""))
    C, nby, nbx = block_grid(shape, (bh, bw))
    return (f"{mode}, blocks of {bh}×{bw} latent samples: {nby}×{nbx} per channel, {C * nby * nbx} in all; "
            f"{info['latent_num_image_models']} image models; block map by {info['latent_map_codec']}"
            + ("; causal contexts" if info.get("latent_contexts") else ""))


def cmd_demo(args) -> int:
    import numpy as np
    from ldem.codec import ENTROPY_MODES, ImageCodec, open_image, psnr, sample_image_path
    from ldem.reference import bpp_at_psnr, jpeg_curve
    path = Path(args.image) if args.image else sample_image_path()
    with open_image(path) as im:
        image = np.asarray(im.convert("RGB"))
    H, W = image.shape[:2]
    jpeg = jpeg_curve(image, range(2, 101, 2))
    first = ImageCodec.pretrained(1)
    print(f"ldem demo: {path.name} ({W}×{H}), shipped model {first.model_id}, {first.num_qualities} qualities")
    print()
    print("| quality | PSNR dB | bpp global, no contexts | bpp global | bpp static | bpp local | local vs global, "
          "no contexts | JPEG 4:2:0 bpp at same PSNR |")
    print("|---|---|---|---|---|---|---|---|")
    t0 = time.time()
    for q in range(1, first.num_qualities + 1):
        codec = ImageCodec.pretrained(q)
        sizes, pixels = {}, None
        y, size = codec.latent(image)  # one analysis serves the three entropy modes
        for mode in ENTROPY_MODES:
            data = codec.compress_latent(y, size, entropy=mode)
            out = codec.decompress_array(data)
            if pixels is None:
                pixels = out
            elif not np.array_equal(pixels, out):
                raise RuntimeError(f"quality {q}: {mode} decoded to other pixels than global")
            sizes[mode] = 8 * len(data) / (H * W)
        # The learned codec's own entropy model: the global tables, no contexts.
        plain = codec.compress_latent(y, size, entropy="global", contexts=False)
        if not np.array_equal(codec.decompress_array(plain), pixels):
            raise RuntimeError(f"quality {q}: the context-free stream decoded to other pixels")
        sizes["plain"] = 8 * len(plain) / (H * W)
        p = psnr(image, pixels)
        j = bpp_at_psnr(jpeg, p)
        red = 100 * (1 - sizes["local"] / sizes["plain"])
        jt = "below JPEG's range" if j != j else f"{j:.4f}"
        print(f"| {q} | {p:.2f} | {sizes['plain']:.4f} | {sizes['global']:.4f} | {sizes['static']:.4f} "
              f"| {sizes['local']:.4f} | {-red:+.1f} % | {jt} |")
    print()
    print(f"every stream decoded; the entropy modes gave identical pixels ({time.time() - t0:.1f} s)")
    return 0


# The qualities of the shipped model (tests check it against the model file).
SHIPPED_QUALITIES = 12

ENTROPY_HELP = """entropy modes (the decoded pixels are the same in every mode; only the size changes):
  global   one fixed model per latent channel: the baseline, no side information
  static   each block takes the cheapest of the global models and a dictionary learned offline
  local    (default) as static, plus models built for this image and sent in the file
static and local write the global stream instead when it is smaller (tiny images).
With a model that has context families (the shipped one does), every mode codes each
latent value with a table chosen by its already-coded neighbours (causal contexts)."""


def _quality_percent(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if not 1 <= v <= 100:
        raise argparse.ArgumentTypeError(f"expected an integer in 1..100, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _parser():
    from ldem._version import __version__
    from ldem.codec import DEFAULT_MAX_PIXELS, ENTROPY_MODES
    from ldem.local import DEFAULT_EFFORT, EFFORTS
    from ldem.model_file import DEFAULT_MAX_BYTES
    ap = argparse.ArgumentParser(prog="ldem", description="Learned image compression with local entropy models.")
    ap.add_argument("--version", action="version", version=f"ldem {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def limits(p):
        p.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
                       help=f"largest image accepted, in pixels (default {DEFAULT_MAX_PIXELS}); a file is read "
                            "back at the settings that wrote it")
        p.add_argument("--model", help="model file (default: the shipped model); any file is checked before use")
        p.add_argument("--max-model-bytes", type=_positive_int, default=DEFAULT_MAX_BYTES, metavar="N",
                       help=f"most memory a model file may take: file, tables and transforms (default "
                            f"{DEFAULT_MAX_BYTES})")

    def output(p, what):
        p.add_argument("output", help=f"{what} to write, '-' for standard output; written through a temporary "
                                      "file and renamed, never over the input")
        p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
        p.add_argument("--quiet", action="store_true", help="no report line and no progress bar")

    p = sub.add_parser("compress", help="compress an image to a .ldem file",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=ENTROPY_HELP)
    p.add_argument("input", help="image file, '-' for standard input")
    output(p, ".ldem file")
    p.add_argument("-q", "--quality", type=int, default=3, metavar="Q",
                   help=f"1 (smallest files) to {SHIPPED_QUALITIES} (best pictures) with the shipped model; "
                        "another --model has its own range (default 3)")
    p.add_argument("--entropy", choices=ENTROPY_MODES, default="local",
                   help="entropy mode (default local; see below)")
    p.add_argument("--effort", type=int, choices=EFFORTS, default=DEFAULT_EFFORT,
                   help=f"entropy coder's search effort, 0 (fastest) to 3 (exhaustive); smaller files for more "
                        f"compression time, decompression time unchanged (default {DEFAULT_EFFORT})")
    limits(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decompress a .ldem file to an image (format from the extension)")
    p.add_argument("input", help=".ldem file, '-' for standard input")
    output(p, "image")
    p.add_argument("--format", help="image format (PNG, BMP, TIFF, ...; default: from the output's extension, "
                                    "PNG on standard output)")
    p.add_argument("--output-quality", type=_quality_percent, default=95, metavar="N",
                   help="quality 1..100 of a lossy output format (JPEG, WebP, AVIF), which re-encodes the decoded "
                        "image (default 95); PNG and other lossless formats keep the decoded pixels exactly")
    limits(p)
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("info", help="show a .ldem file's header and the bits of each part")
    p.add_argument("input", help=".ldem file, '-' for standard input")
    limits(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="code the bundled sample at every quality and entropy mode")
    p.add_argument("--image", help="another image instead of the bundled sample")
    p.set_defaults(func=cmd_demo)

    sub.add_parser("train", help="train the transforms (see ldem train --help)", add_help=False)
    sub.add_parser("eval", help="rate–distortion evaluation over a folder (see ldem eval --help)", add_help=False)
    sub.add_parser("export", help="build a model file from a checkpoint (see ldem export --help)", add_help=False)
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return _guard(lambda: _dispatch(argv))


def _dispatch(argv) -> int:
    """Runs the command ``argv`` names (usage errors and --help exit through SystemExit)."""
    if argv and argv[0] == "train":
        from ldem.train import train
        return train(argv[1:])
    if argv and argv[0] == "export":
        from ldem.export import main as export_main
        return export_main(argv[1:])
    if argv and argv[0] == "eval":
        from ldem.evaluate import main as eval_main
        return eval_main(argv[1:])
    args = _parser().parse_args(argv)
    return args.func(args)


def _guard(fn) -> int:
    """Runs a command; any failure becomes one line on stderr and exit status 1 (a
    traceback only with LDEM_TRACEBACK=1 in the environment)."""
    import os
    from ldem.errors import DecodeError
    try:
        return fn()
    except UserError as e:
        msg = str(e)
    except DecodeError as e:
        msg = f"corrupt or mismatched .ldem file: {e}"
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError, FileExistsError) as e:
        msg = str(e)
    except OSError as e:
        msg = f"{e.strerror or e}" + (f": {e.filename}" if getattr(e, "filename", None) else "")
    except ImportError as e:  # a missing optional dependency, or a core not built in place
        msg = str(e)
    except MemoryError:
        msg = "out of memory (lower --max-pixels, or free memory)"
    except KeyboardInterrupt:
        msg = "interrupted"
    except Exception as e:  # never a traceback for the user; the type names the failure
        if os.environ.get("LDEM_TRACEBACK"):
            raise
        msg = f"internal error: {type(e).__name__}: {e}"
    msg = " ".join(str(msg).split()) or "failed"
    print(f"ldem: error: {msg}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
