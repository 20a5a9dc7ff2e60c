"""The ``ldem`` command: compress, decompress, info, demo, train, export, eval.

User errors (a missing or corrupt file, a bad quality) print one line on stderr and exit
with status 1; usage errors exit with 2.

Examples::

    ldem demo
    ldem compress photo.png photo.ldem -q 3 --entropy local
    ldem info photo.ldem
    ldem decompress photo.ldem photo-decoded.png
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def _read(path) -> bytes:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file")
    if p.is_dir():
        raise UserError(f"{path}: is a folder")
    return p.read_bytes()


def _codec_for(data: bytes, model):
    from ldem.codec import ImageCodec
    return ImageCodec.for_file(data, model)


def cmd_compress(args) -> int:
    from PIL import Image, UnidentifiedImageError
    from ldem.codec import ImageCodec
    _read(args.input)  # clear message for missing files
    try:
        image = Image.open(args.input)
        image.load()
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{args.input}: not an image Pillow can read ({e})") from None
    codec = ImageCodec.load(args.model, args.quality) if args.model else ImageCodec.pretrained(args.quality)
    data, stats = codec.compress(image, entropy=args.entropy, return_stats=True)
    Path(args.output).write_bytes(data)
    print(f"{args.output}: {len(data)} bytes, {stats['bpp']:.4f} bpp ({image.width}×{image.height}, "
          f"quality {args.quality}, entropy {stats['mode']})")
    return 0


def cmd_decompress(args) -> int:
    data = _read(args.input)
    codec = _codec_for(data, args.model)
    image = codec.decompress(data)
    try:
        image.save(args.output)
    except (ValueError, KeyError) as e:  # unknown extension
        raise UserError(f"{args.output}: cannot write this image format ({e})") from None
    print(f"{args.output}: {image.width}×{image.height}")
    return 0


def cmd_info(args) -> int:
    data = _read(args.input)
    codec = _codec_for(data, args.model)
    info = codec.info(data)
    n = info["width"] * info["height"]
    print(f"file            {args.input}")
    print(f"format version  {info['version']}")
    print(f"model           {info['model_id']}  quality {info['quality']} of {codec.num_qualities}")
    t, level = codec.bundle.level_of(codec.quality)
    cfg = codec.bundle.configs[t]
    print(f"transforms      set {t} (of {len(codec.bundle.configs)}; N={cfg['N']}, M={cfg['M']}), "
          f"trained level {level} (λ={cfg['lambdas'][level]})")
    print(f"image           {info['width']}×{info['height']}")
    print(f"latent          {'×'.join(map(str, info['latent_shape']))}  entropy {info['latent_mode']}"
          + (f", blocks {info['latent_block'][0]}×{info['latent_block'][1]}, "
             f"{info['latent_num_image_models']} image models, map by {info['latent_map_codec']}"
             if info["latent_block"] else ""))
    parts = [("file header", info["header_bytes"]), ("stream header", info["latent_bytes_header"]),
             ("image tables + map counts", info["latent_bytes_side_tables_and_map_counts"]),
             ("block map", info["latent_bytes_block_map"]), ("latent data", info["latent_bytes_data"])]
    print(f"{'part':<26} {'bytes':>9} {'bits/pixel':>11} {'share':>7}")
    for name, b in parts:
        print(f"{name:<26} {b:>9} {8 * b / n:>11.4f} {100 * b / info['bytes']:>6.2f}%")
    print(f"{'total':<26} {info['bytes']:>9} {info['bpp']:>11.4f} {100.0:>6.2f}%")
    return 0


def cmd_demo(args) -> int:
    import numpy as np
    from PIL import Image
    from ldem.codec import ImageCodec, psnr, sample_image_path
    from ldem.reference import bpp_at_psnr, jpeg_curve
    path = Path(args.image) if args.image else sample_image_path()
    _read(path)
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))
    H, W = image.shape[:2]
    jpeg = jpeg_curve(image, range(2, 101, 2))
    first = ImageCodec.pretrained(1)
    print(f"ldem demo: {path.name} ({W}×{H}), shipped model {first.model_id}, {first.num_qualities} qualities")
    print()
    print("| quality | PSNR dB | bpp global | bpp static | bpp local | local vs global | JPEG 4:2:0 bpp at same PSNR |")
    print("|---|---|---|---|---|---|---|")
    t0 = time.time()
    for q in range(1, first.num_qualities + 1):
        codec = ImageCodec.pretrained(q)
        sizes, pixels = {}, None
        y, size = codec.latent(image)  # one analysis serves the three entropy modes
        for mode in ("global", "static", "local"):
            data = codec.compress_latent(y, size, entropy=mode)
            out = codec.decompress_array(data)
            if pixels is None:
                pixels = out
            elif not np.array_equal(pixels, out):
                raise RuntimeError(f"quality {q}: {mode} decoded to other pixels than global")
            sizes[mode] = 8 * len(data) / (H * W)
        p = psnr(image, pixels)
        j = bpp_at_psnr(jpeg, p)
        red = 100 * (1 - sizes["local"] / sizes["global"])
        jt = "below JPEG's range" if j != j else f"{j:.4f}"
        print(f"| {q} | {p:.2f} | {sizes['global']:.4f} | {sizes['static']:.4f} | {sizes['local']:.4f} "
              f"| {-red:+.1f} % | {jt} |")
    print()
    print(f"every stream decoded; the three entropy modes gave identical pixels ({time.time() - t0:.1f} s)")
    return 0


def _parser():
    ap = argparse.ArgumentParser(prog="ldem", description="Learned image compression with local entropy models.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compress", help="compress an image to a .ldem file")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("-q", "--quality", type=int, default=3, help="1 = smallest files (default 3)")
    p.add_argument("--entropy", choices=["global", "static", "local"], default="local")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decompress a .ldem file to an image (format from the extension)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("info", help="show a .ldem file's header and the bits of each part")
    p.add_argument("input")
    p.add_argument("--model", help="model file (default: the shipped model)")
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
    if argv and argv[0] == "train":
        from ldem.train import train
        return _guard(lambda: train(argv[1:]))
    if argv and argv[0] == "export":
        from ldem.export import main as export_main
        return _guard(lambda: export_main(argv[1:]))
    if argv and argv[0] == "eval":
        from ldem.evaluate import main as eval_main
        return _guard(lambda: eval_main(argv[1:]))
    args = _parser().parse_args(argv)
    return _guard(lambda: args.func(args))


def _guard(fn) -> int:
    from ldem.errors import DecodeError
    try:
        return fn()
    except UserError as e:
        msg = str(e)
    except DecodeError as e:
        msg = f"corrupt or mismatched .ldem file: {e}"
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        msg = str(e)
    except OSError as e:
        msg = f"{e.strerror or e}" + (f": {e.filename}" if getattr(e, "filename", None) else "")
    except KeyboardInterrupt:
        msg = "interrupted"
    print(f"ldem: error: {msg}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
