"""The coder workloads, now in :mod:`ldem_bench.workloads`; kept for the scripts that
still import ``workloads``."""
from ldem_bench.workloads import SHAPE, workload_a, workload_b, workload_lowrate  # noqa: F401
