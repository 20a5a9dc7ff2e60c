"""Rate–distortion evaluation: a thin wrapper around ``ldem eval`` (ldem.evaluate).

Usage::

    # one folder (all options of `ldem eval --help`)
    python benchmarks/eval_rd.py DIR [--qualities 1 2 ...] [--out OUT] [--limit N] [--no-references]

    # the two development sets, each into its own folder under OUT (default results/rd)
    python benchmarks/eval_rd.py --dev-sets [--out OUT] [other ldem eval options]

    # remake the pictures of saved results (no codec runs)
    python benchmarks/eval_rd.py --figures OUT [OUT ...]

The development sets need ``python benchmarks/fetch_data.py fetch`` first.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ldem.evaluate import main as eval_main
from ldem.evaluate import make_figures

DEV_SETS = ("dev_photos", "dev_simple")


def _pop_option(argv, name, default):
    if name in argv:
        i = argv.index(name)
        if i + 1 >= len(argv):
            raise ValueError(f"{name} needs a value")
        value = argv[i + 1]
        del argv[i:i + 2]
        return value
    return default


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--figures":
        if len(argv) < 2:
            raise ValueError("--figures needs one or more results folders")
        for folder in argv[1:]:
            for path in make_figures(folder):
                print(path)
        return 0
    if argv and argv[0] == "--dev-sets":
        from ldem_bench import datasets
        rest = argv[1:]
        out = Path(_pop_option(rest, "--out", "results/rd"))
        for split in DEV_SETS:
            folder = datasets.split_images(split)[0].parent
            print(f"== {split}: {folder}")
            status = eval_main([str(folder), "--out", str(out / split), *rest])
            if status:
                return status
        return 0
    return eval_main(argv)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as e:
        print(f"eval_rd: error: {e}", file=sys.stderr)
        sys.exit(1)
