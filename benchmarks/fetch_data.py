"""Fetches ldem's training and development images from Debian packages into the data
cache (see :mod:`ldem_bench.datasets`)::

    python benchmarks/fetch_data.py fetch [--cache DIR] [--quiet] [--with-python-packages]
    python benchmarks/fetch_data.py info [--cache DIR]

Run as a script (not ``python -m``), so that the clone's ``ldem/`` folder does not
shadow the installed package.
"""
import sys

from ldem_bench.datasets import main

if __name__ == "__main__":
    sys.exit(main())
