"""GPU throughput, latency and rate of ldem's CUDA engine (prints markdown tables).

    python benchmarks/bench_cuda.py [--repeats 10] [--batches 1 16 256] [--quick]

Workload A of the design notes (192 x 32 x 48 symbols, one Laplace table per channel,
3.0 bits/symbol) and a low-rate variant at 0.267 bits/symbol (0.2 bpp on a 768 x 512
image). Every batch item is its own stream (item b is workload A with its channels
rolled by b). Reported, all in one run on one device:

- encode / decode throughput in GSym/s for 1, 16 and 256 latents, end to end through
  ldem.cuda (host checks, launches, the one synchronisation that reads sizes and
  statuses), for the automatic plan and for fixed (lanes, segment size) layouts;
- single-latent latency (median wall time of one call);
- the device-to-device copy bandwidth measured in the same run, and the throughput
  limit it implies for decoding (int32 out + stream in per symbol);
- the rate overhead of each layout against the ideal (exact costs) and against the
  CPU's default stream (4 lanes, 2^17-symbol segments).
Every stream is checked: GPU bytes == CPU bytes for the same parameters, and decoded
symbols == input.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import ldem
import ldem.cuda  # (imports torch only when used)
from ldem_bench.workloads import SHAPE, workload_a, workload_lowrate


def fail(msg: str) -> None:
    print(f"bench_cuda: {msg}", file=sys.stderr)
    sys.exit(2)



def timed(torch, fn, repeats):
    """Median wall time of fn() (each call ends synchronised), after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(torch, nbytes, repeats):
    src = torch.empty(nbytes // 4, dtype=torch.int32, device="cuda").random_()
    dst = torch.empty_like(src)
    t = timed(torch, lambda: dst.copy_(src), repeats)
    return 2 * nbytes / t  # bytes read + written per second


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
    ap.add_argument("--layouts", nargs="*", default=["32:4096", "32:16384", "32:65536"],
                    help="fixed lanes:segment_size layouts to time besides the automatic plan")
    ap.add_argument("--quick", action="store_true", help="2 repeats, batches 1 and 16")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.batches = 2, [1, 16]

    if not ldem.build_info().get("cuda"):
        fail("ldem was built without the CUDA engine (no nvcc at build time, or LDEM_WITH_CUDA=OFF)")
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed; the CUDA engine takes torch tensors")
    if ldem._core.cuda_device_count() == 0 or not torch.cuda.is_available():
        fail("no CUDA GPU is available on this machine; nothing to measure")

    dev = torch.cuda.get_device_name(0)
    print(f"# ldem CUDA engine on {dev} (torch {torch.__version__}, ldem {ldem.__version__})\n")

    y, pmfs, offsets, models = workload_a()
    d = ldem.Dictionary.from_pmfs(pmfs, offsets)
    block = SHAPE[1:]
    N = y.size
    yl, pl, ol, ml = workload_lowrate()
    dl = ldem.Dictionary.from_pmfs(pl, ol)

    # -- bandwidth limit ------------------------------------------------------------------------
    Bmax = max(args.batches)
    bw = copy_bandwidth(torch, Bmax * N * 4, args.repeats)

    # -- rate -----------------------------------------------------------------------------------
    print("## Rate overhead (one latent)\n")
    print("| latent | layout (lanes x segments) | bytes | vs ideal | vs CPU default stream |")
    print("|---|---|---|---|---|")
    for name, (yy, mm, dd) in {"workload A, 3.0 bit/sym": (y, models, d),
                               "0.2 bpp, 0.267 bit/sym": (yl, ml, dl)}.items():
        ideal = np.take_along_axis(ldem.block_costs(yy, dd, block), mm[..., None], axis=-1).sum() / 8
        cpu = len(ldem.encode(yy, mm, dd, block))
        gy, gm = torch.from_numpy(yy).cuda(), torch.from_numpy(mm).cuda()
        layouts = [("auto", None, None)] + [(s, int(s.split(":")[0]), int(s.split(":")[1])) for s in args.layouts]
        for label, lanes, seg in layouts:
            data = ldem.cuda.encode_cuda(gy, gm, dd, block, lanes=lanes, segment_size=seg)
            raw = data.cpu().numpy().tobytes()
            l, sh = ldem._core.stream_params(raw)
            if raw != ldem.encode(yy, mm, dd, block, lanes=l, segment_size=1 << sh):
                fail(f"GPU stream differs from the CPU stream ({name}, {label})")
            S = ldem._core.num_segments(N, sh)
            print(f"| {name} | {label}: {l} x {S} | {len(raw)} | {100 * (len(raw) / ideal - 1):+.3f} % "
                  f"| {100 * (len(raw) / cpu - 1):+.3f} % |")
        print(f"| {name} | CPU default: 4 x {ldem._core.num_segments(N, 17)} | {cpu} "
              f"| {100 * (cpu / ideal - 1):+.3f} % | 0 |")

    # -- throughput -----------------------------------------------------------------------------
    print(f"\n## Throughput (GSym/s, end to end; {args.repeats} repeats, median)\n")
    print(f"Device-to-device copy: {bw / 1e9:.0f} GB/s (read + write); decode limit at 4 B out + "
          f"~0.4 B in per symbol: {bw / 4.4 / 1e9:.0f} GSym/s.\n")
    print("| latent | layout | batch | encode GSym/s | decode GSym/s | encode ms | decode ms |")
    print("|---|---|---|---|---|---|---|")
    latency = {}
    for name, (yy, mm, dd) in {"A": (y, models, d), "0.2 bpp": (yl, ml, dl)}.items():
        for B in args.batches:
            ys = torch.stack([torch.from_numpy(np.roll(yy, b, axis=0)) for b in range(B)]).cuda()
            ms = torch.stack([torch.from_numpy(np.roll(mm, b, axis=0)) for b in range(B)]).cuda()
            layouts = [("auto", None, None)] + [(s, int(s.split(":")[0]), int(s.split(":")[1])) for s in args.layouts]
            for label, lanes, seg in layouts:
                enc = lambda: ldem.cuda.encode_batch(ys, ms, dd, block, lanes=lanes, segment_size=seg)
                streams = enc()
                dec = lambda: ldem.cuda.decode_batch(streams, ms, dd, SHAPE, block)
                outs = dec()
                if not torch.equal(torch.stack(outs), ys):
                    fail(f"round trip failed ({name}, {label}, batch {B})")
                te = timed(torch, enc, args.repeats)
                td = timed(torch, dec, args.repeats)
                print(f"| {name} | {label} | {B} | {B * N / te / 1e9:.2f} | {B * N / td / 1e9:.2f} "
                      f"| {te * 1e3:.3f} | {td * 1e3:.3f} |")
                if B == 1:
                    latency[(name, label)] = (te, td)
            ys = ms = streams = outs = None
            torch.cuda.empty_cache()

    print("\n## Single-latent latency (one call, synchronised, median)\n")
    print("| latent | layout | encode µs | decode µs |")
    print("|---|---|---|---|")
    for (name, label), (te, td) in latency.items():
        print(f"| {name} | {label} | {te * 1e6:.0f} | {td * 1e6:.0f} |")


if __name__ == "__main__":
    main()
