"""Tooling shared by the benchmark scripts, not part of the ldem package: the training and
development images fetched from Debian packages (:mod:`ldem_bench.datasets`) and the
coder workloads of the design notes (:mod:`ldem_bench.workloads`).

Scripts in ``benchmarks/`` import it directly (Python puts a script's folder on
``sys.path``); the tests import it through pytest's ``pythonpath = ["benchmarks"]``.
"""
