"""Tests import the installed ldem (with its compiled core), never the source tree,
even under ``python -m pytest`` (which puts the working directory on sys.path)."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]
