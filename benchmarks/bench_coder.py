"""Coder benchmark: ldem against the installed peers on workloads A and B (design notes §3).

    python benchmarks/bench_coder.py [--repeats 15] [--quick] [--json PATH]
    python benchmarks/bench_coder.py --batch [--repeats 15]

Workload A: 192 x 32 x 48 symbols in [-32, 32], one discretized Laplace table per channel.
Workload B: the same size, every symbol indexes one of 64 discretized Gaussians.
Both come from benchmarks/workloads.py (numpy seed 0).

Every figure is the best of --repeats timed calls after one warm-up call, Python call
included, and every case is decoded and compared with the input. Sizes are compared with
two ideals: the float ideal (cross-entropy of the pmfs the data was drawn from) and, for
ldem, the integer-table ideal (the exact bits of ldem.block_costs at the chosen models).
Peers (constriction, CompressAI, range-coder, torchac, zlib) run when importable and are
skipped with the reason printed otherwise.

--batch times ldem.encode_batch / decode_batch on batches of 8 latents (192 x 32 x 48 and
320 x 8 x 12, one Laplace table per channel) against a Python loop of 8 ldem.encode /
decode calls, at 1 thread and at all threads.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

import ldem
from ldem_bench.workloads import SHAPE, _laplace_pmf, workload_a, workload_b

# -- helpers ---------------------------------------------------------------------------------------


def best_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Workload:
    """Symbols plus, per symbol, the pmf row it was drawn from (for the float ideal)."""

    def __init__(self, name, symbols, pmfs, offsets, models, block, per_symbol_model):
        self.name = name
        self.symbols = symbols
        self.pmfs = [np.asarray(p, np.float64) for p in pmfs]
        self.offsets = np.asarray(offsets, np.int64)
        self.models = models
        self.block = block
        self.index = per_symbol_model  # int32 [C, H, W]
        self.n = symbols.size
        bits = 0.0
        flat_y, flat_k = symbols.reshape(-1), per_symbol_model.reshape(-1)
        for k, p in enumerate(self.pmfs):
            sel = flat_k == k
            bits += float(-np.log2(p[flat_y[sel] - self.offsets[k]]).sum())
        self.float_ideal_bytes = bits / 8


def make_workloads():
    ya, pa, oa, ma = workload_a(0)
    C, H, W = SHAPE
    a = Workload("A", ya, pa, oa, ma, (H, W), np.broadcast_to(np.arange(C, dtype=np.int32)[:, None, None], SHAPE))
    yb, pb, ob, ib = workload_b(0)
    b = Workload("B", yb, pb, ob, ib, (1, 1), ib)
    return [a, b]


# -- coders ---------------------------------------------------------------------------------------

def bench_ldem(wl: Workload, repeats: int):
    d = ldem.Dictionary.from_pmfs(wl.pmfs, wl.offsets, precision=16)
    # Integer-table ideal: exact bits of each block under its chosen model (chunks of channels
    # keep the [C, nby, nbx, K] array small for per-symbol maps).
    bits = 0.0
    for c0 in range(0, wl.symbols.shape[0], 16):
        costs = ldem.block_costs(wl.symbols[c0:c0 + 16], d, wl.block)
        idx = wl.models[c0:c0 + 16].astype(np.int64)[..., None]
        bits += float(np.take_along_axis(costs, idx, axis=3).sum())
    int_ideal = bits / 8
    rows = []
    for threads, label in ((1, "1"), (None, f"all ({ldem.build_info()['hardware_threads']})")):
        t_enc, data = best_time(lambda: ldem.encode(wl.symbols, wl.models, d, wl.block, threads=threads), repeats)
        t_dec, out = best_time(lambda: ldem.decode(data, wl.models, d, wl.symbols.shape, wl.block, threads=threads),
                               repeats)
        assert np.array_equal(out, wl.symbols), "ldem round trip failed"
        rows.append(dict(library=f"ldem {ldem.__version__}", workload=wl.name, threads=label,
                         enc_msyms=wl.n / t_enc / 1e6, dec_msyms=wl.n / t_dec / 1e6, bytes=len(data),
                         int_ideal_bytes=int_ideal, float_ideal_bytes=wl.float_ideal_bytes))
    return rows


def bench_constriction(wl: Workload, repeats: int):
    import constriction

    Categorical = constriction.stream.model.Categorical
    AnsCoder = constriction.stream.stack.AnsCoder
    models = [Categorical(p, perfect=False) for p in wl.pmfs]  # one prebuilt model per table
    flat_y = wl.symbols.reshape(-1)
    flat_k = wl.index.reshape(-1)
    if wl.name == "A":  # one table per channel: one encode_reverse per channel
        C = wl.symbols.shape[0]
        groups = [(c, np.arange(c * (wl.n // C), (c + 1) * (wl.n // C))) for c in range(C)]
    else:  # per-symbol model index: group the symbols by model (the decoder knows the map)
        order = np.argsort(flat_k, kind="stable")
        bounds = np.searchsorted(flat_k[order], np.arange(len(wl.pmfs) + 1))
        groups = [(k, order[bounds[k]:bounds[k + 1]]) for k in range(len(wl.pmfs))]
    grouped = [(k, pos, (flat_y[pos] - wl.offsets[k]).astype(np.int32)) for k, pos in groups]

    def encode():
        coder = AnsCoder()
        for k, _, sym in reversed(grouped):
            coder.encode_reverse(sym, models[k])
        return coder.get_compressed()

    def decode(compressed):
        coder = AnsCoder(compressed)
        out = np.empty(wl.n, np.int32)
        for k, pos, sym in grouped:
            out[pos] = coder.decode(models[k], len(pos)) + wl.offsets[k]
        return out

    t_enc, compressed = best_time(encode, repeats)
    t_dec, out = best_time(lambda: decode(compressed), repeats)
    assert np.array_equal(out, flat_y), "constriction round trip failed"
    version = _dist_version("constriction")
    how = "Categorical per table, grouped" + (" by model" if wl.name == "B" else " per channel")
    return [dict(library=f"constriction {version} ({how})", workload=wl.name, threads="1",
                 enc_msyms=wl.n / t_enc / 1e6, dec_msyms=wl.n / t_dec / 1e6, bytes=compressed.nbytes,
                 int_ideal_bytes=None, float_ideal_bytes=wl.float_ideal_bytes)]


def bench_compressai(wl: Workload, repeats: int):
    from ldem_bench.compressai_env import import_compressai
    compressai = import_compressai()
    from compressai._CXX import pmf_to_quantized_cdf
    from compressai.ans import RansDecoder, RansEncoder

    cdfs, lengths = [], []
    for p in wl.pmfs:
        tail = max(0.0, 1.0 - float(p.sum()))
        cdf = pmf_to_quantized_cdf(p.tolist() + [tail], 16)
        cdfs.append(list(cdf))
        lengths.append(len(cdf))
    offsets = [int(o) for o in wl.offsets]
    symbols = wl.symbols.reshape(-1).tolist()
    indexes = wl.index.reshape(-1).astype(np.int32).tolist()

    def encode():
        return RansEncoder().encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)

    t_enc, data = best_time(encode, repeats)
    t_dec, out = best_time(lambda: RansDecoder().decode_with_indexes(data, indexes, cdfs, lengths, offsets), repeats)
    assert np.array_equal(np.asarray(out, np.int64), wl.symbols.reshape(-1)), "CompressAI round trip failed"
    return [dict(library=f"CompressAI {compressai.__version__} (encode_with_indexes)", workload=wl.name,
                 threads="1", enc_msyms=wl.n / t_enc / 1e6, dec_msyms=wl.n / t_dec / 1e6, bytes=len(data),
                 int_ideal_bytes=None, float_ideal_bytes=wl.float_ideal_bytes)]


def bench_range_coder(wl: Workload, repeats: int):
    from range_coder import RangeDecoder, RangeEncoder, prob_to_cum_freq

    cum = [prob_to_cum_freq(p, resolution=1 << 16) for p in wl.pmfs]
    flat_y, flat_k = wl.symbols.reshape(-1), wl.index.reshape(-1)
    order = np.argsort(flat_k, kind="stable")
    bounds = np.searchsorted(flat_k[order], np.arange(len(wl.pmfs) + 1))
    groups = [(k, order[bounds[k]:bounds[k + 1]]) for k in range(len(wl.pmfs))]
    grouped = [(k, pos, (flat_y[pos] - wl.offsets[k]).tolist()) for k, pos in groups if len(pos)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stream.bin")

        def encode():
            enc = RangeEncoder(path)
            for k, _, sym in grouped:
                enc.encode(sym, cum[k])
            enc.close()
            return os.path.getsize(path)

        def decode():
            dec = RangeDecoder(path)
            out = np.empty(wl.n, np.int64)
            for k, pos, _ in grouped:
                out[pos] = np.asarray(dec.decode(len(pos), cum[k])) + wl.offsets[k]
            dec.close()
            return out

        t_enc, size = best_time(encode, repeats)
        t_dec, out = best_time(decode, repeats)
    assert np.array_equal(out, flat_y), "range-coder round trip failed"
    return [dict(library=f"range-coder {_dist_version('range-coder')} (grouped by table, via a file)",
                 workload=wl.name, threads="1", enc_msyms=wl.n / t_enc / 1e6, dec_msyms=wl.n / t_dec / 1e6,
                 bytes=size, int_ideal_bytes=None, float_ideal_bytes=wl.float_ideal_bytes)]


def bench_torchac(wl: Workload, repeats: int):
    import torch
    import torchac

    if wl.name != "A":
        raise RuntimeError("a per-symbol CDF tensor for B would need ~3.7 GB")
    C, H, W = wl.symbols.shape
    cdf = np.zeros((C, len(wl.pmfs[0]) + 1))
    for c, p in enumerate(wl.pmfs):
        cdf[c, 1:] = np.cumsum(p / p.sum())
    cdf[:, -1] = 1.0
    cdf_t = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(cdf[:, None, None, :], (C, H, W, cdf.shape[1]))))
    cdf_t = cdf_t.float()
    sym = torch.from_numpy((wl.symbols - wl.offsets[0]).astype(np.int16))
    t_enc, data = best_time(lambda: torchac.encode_float_cdf(cdf_t, sym, check_input_bounds=True), repeats)
    t_dec, out = best_time(lambda: torchac.decode_float_cdf(cdf_t, data), repeats)
    assert np.array_equal(out.numpy().astype(np.int32) + wl.offsets[0], wl.symbols), "torchac round trip failed"
    return [dict(library=f"torchac {_dist_version('torchac')} (float CDF per symbol)", workload=wl.name,
                 threads="1", enc_msyms=wl.n / t_enc / 1e6, dec_msyms=wl.n / t_dec / 1e6, bytes=len(data),
                 int_ideal_bytes=None, float_ideal_bytes=wl.float_ideal_bytes)]


def bench_zlib(wl: Workload, repeats: int):
    lo, hi = int(wl.symbols.min()), int(wl.symbols.max())
    dtype = np.int8 if -128 <= lo and hi <= 127 else np.int16
    raw = wl.symbols.astype(dtype).tobytes()
    t_enc, data = best_time(lambda: zlib.compress(raw, 6), repeats)
    t_dec, out = best_time(lambda: np.frombuffer(zlib.decompress(data), dtype), repeats)
    assert np.array_equal(out.reshape(wl.symbols.shape), wl.symbols), "zlib round trip failed"
    return [dict(library=f"zlib {zlib.ZLIB_RUNTIME_VERSION} level 6 on {np.dtype(dtype).name} bytes (no model)",
                 workload=wl.name, threads="1", enc_msyms=wl.n / t_enc / 1e6, dec_msyms=wl.n / t_dec / 1e6,
                 bytes=len(data), int_ideal_bytes=None, float_ideal_bytes=wl.float_ideal_bytes)]


def _dist_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


PEERS = [("constriction", bench_constriction), ("CompressAI", bench_compressai),
         ("range-coder", bench_range_coder), ("torchac", bench_torchac), ("zlib", bench_zlib)]


# -- batches --------------------------------------------------------------------------------------

def batch_latents(shape, n: int = 8, seed: int = 0):
    """n latents of ``shape`` and their dictionary: one discretized Laplace per channel,
    scales log-uniform in [0.2, 8] (values outside [-32, 32] are escaped)."""
    rng = np.random.default_rng(seed)
    C = shape[0]
    scales = np.exp(rng.uniform(np.log(0.2), np.log(8.0), size=C))
    d = ldem.Dictionary.from_pmfs([_laplace_pmf(s, -32, 32) for s in scales], [-32] * C, precision=16)
    ys = [np.rint(rng.laplace(size=shape) * scales[:, None, None]).astype(np.int32) for _ in range(n)]
    return ys, np.arange(C, dtype=np.int32).reshape(C, 1, 1), d


def bench_batch(repeats: int) -> str:
    """Markdown table: a batch call against a loop of single calls, 1 thread and all threads."""
    all_threads = ldem.build_info()["hardware_threads"]
    out = ["| batch of 8 | threads | how | encode ms | decode ms | enc MSym/s | dec MSym/s |",
           "|---|---|---|---:|---:|---:|---:|"]
    for shape in ((192, 32, 48), (320, 8, 12)):
        ys, m, d = batch_latents(shape)
        block, n = shape[1:], sum(y.size for y in ys)
        expected = [ldem.encode(y, m, d, block) for y in ys]
        for threads, label in ((1, "1"), (None, f"all ({all_threads})")):
            cases = (
                ("loop of ldem.encode", lambda: [ldem.encode(y, m, d, block, threads=threads) for y in ys],
                 lambda s: [ldem.decode(b, m, d, shape, block, threads=threads) for b in s]),
                ("ldem.encode_batch", lambda: ldem.encode_batch(ys, m, d, block=block, threads=threads),
                 lambda s: ldem.decode_batch(s, m, d, shape, block=block, threads=threads)))
            for how, enc, dec in cases:
                t_enc, streams = best_time(enc, repeats)
                assert streams == expected, "batch bytes differ from ldem.encode"
                t_dec, back = best_time(lambda: dec(streams), repeats)
                assert all(np.array_equal(a, y) for a, y in zip(back, ys)), "round trip failed"
                out.append(f"| {'x'.join(map(str, shape))} | {label} | {how} | {t_enc * 1e3:.2f} | "
                           f"{t_dec * 1e3:.2f} | {n / t_enc / 1e6:.1f} | {n / t_dec / 1e6:.1f} |")
    return "\n".join(out)


# -- report ---------------------------------------------------------------------------------------

def pct(size, ideal):
    return "—" if ideal is None else f"{(size / ideal - 1) * 100:+.3f} %"


def table(rows) -> str:
    out = ["| library | workload | threads | enc MSym/s | dec MSym/s | bytes | overhead vs float ideal "
           "| overhead vs integer-table ideal |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['library']} | {r['workload']} | {r['threads']} | {r['enc_msyms']:.1f} | "
                   f"{r['dec_msyms']:.1f} | {r['bytes']:,} | {pct(r['bytes'], r['float_ideal_bytes'])} | "
                   f"{pct(r['bytes'], r['int_ideal_bytes'])} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="ldem coder benchmark (workloads A and B)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per figure (best is kept); default 15")
    ap.add_argument("--quick", action="store_true", help="2 repeats, workload A only")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--batch", action="store_true",
                    help="only time batches of 8 latents: encode_batch/decode_batch against a loop of calls")
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 15)
    if args.batch:
        print(f"machine: {cpu_model()}, {usable_cores()} cores; best of {repeats} after a warm-up, "
              "bytes checked against ldem.encode, every case round-tripped\n")
        print(bench_batch(repeats))
        return 0

    workloads = make_workloads()
    if args.quick:
        workloads = workloads[:1]
    rows, skipped = [], []
    for wl in workloads:
        rows += bench_ldem(wl, repeats)
        for name, fn in PEERS:
            try:
                rows += fn(wl, repeats)
            except ImportError as e:
                skipped.append((name, wl.name, f"not importable ({e})"))
            except Exception as e:  # noqa: BLE001 - a peer failing must not hide the others
                skipped.append((name, wl.name, f"{type(e).__name__}: {e}"))

    info = ldem.build_info()
    print(f"machine: {cpu_model()}, {usable_cores()} cores ({platform.machine()}, {platform.system()})")
    print(f"python {platform.python_version()}, numpy {np.__version__}, ldem {ldem.__version__} "
          f"({info['compiler']}, {info['simd']}, {info['lanes']} lanes)")
    for wl in workloads:
        print(f"workload {wl.name}: {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} = {wl.n:,} symbols, float ideal "
              f"{wl.float_ideal_bytes * 8 / wl.n:.4f} bit/symbol = {wl.float_ideal_bytes:,.0f} bytes")
    print(f"best of {repeats} after a warm-up, Python call included, every case round-tripped\n")
    print(table(rows))
    reasons = {}
    for name, wname, why in skipped:
        reasons.setdefault((name, why), []).append(wname)
    for (name, why), wnames in reasons.items():
        print(f"\nskipped {name} (workload {', '.join(wnames)}): {why}", end="")
    print("\n")

    # Ratios ldem / peer at 1 thread.
    ratios = []
    for wl in workloads:
        mine = next(r for r in rows
                    if r["workload"] == wl.name and r["library"].startswith("ldem") and r["threads"] == "1")
        for r in rows:
            if r["workload"] == wl.name and not r["library"].startswith("ldem"):
                ratios.append(dict(workload=wl.name, peer=r["library"], enc=mine["enc_msyms"] / r["enc_msyms"],
                                   dec=mine["dec_msyms"] / r["dec_msyms"]))
    if ratios:
        print("| ldem / peer, 1 thread | workload | encode | decode |\n|---|---|---:|---:|")
        for q in ratios:
            print(f"| {q['peer']} | {q['workload']} | {q['enc']:.2f}x | {q['dec']:.2f}x |")
        head = [q for q in ratios if q["workload"] == "A" and q["peer"].startswith("constriction")]
        if head:
            print(f"\nworkload A, 1 thread, ldem vs constriction: encode {head[0]['enc']:.2f}x, "
                  f"decode {head[0]['dec']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(
            machine=dict(cpu=cpu_model(), cores=usable_cores(), platform=platform.platform()),
            versions=dict(python=platform.python_version(), numpy=np.__version__, ldem=ldem.__version__,
                          build_info=info),
            repeats=repeats, rows=rows, ratios=ratios,
            skipped=[dict(peer=n, workload=w, reason=why) for n, w, why in skipped]), indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
