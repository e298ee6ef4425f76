"""Benchmark ditgaze.rasterize: forward + backward time and peak memory per backend and Gaussian count.

Every (backend, N) configuration runs in its own subprocess, so peak memory is not polluted by the
previous configuration:
  * CPU: peak resident set size (getrusage ru_maxrss) of the subprocess during the timed renders,
    minus its value just before the first render (scene built, torch and gsplat imported). This counts everything
    the process touched, allocator caches included: an upper bound on what rendering needs.
    (tracemalloc does not see torch's allocations.)
  * CUDA: torch.cuda.max_memory_allocated() during the renders minus the memory allocated before.
Times are medians over --repeats renders after --warmup renders; backward is `loss.backward()` of a sum
over all three outputs, with gradients w.r.t. means, quats, scales, opacities and features.

  python scripts/bench_rasterize.py                       # 5k, 20k, 50k Gaussians, 128x128, C=32, B=1
  python scripts/bench_rasterize.py --sizes 5000 --batch 4 --backends torch
"""
import argparse, json, os, resource, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))  # gsplat's JIT build stays in the repo


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(a) -> dict:
    "One configuration, in this process. Returns the measurements."
    import torch
    from ditgaze.rasterize import random_scene, rasterize
    import gsplat.cuda._torch_impl  # imported by the first render; import it before the memory baseline
    if a.threads > 0: torch.set_num_threads(a.threads)
    device = "cuda" if a.backend == "gsplat" else a.device
    sc = random_scene(a.n, batch=a.batch, channels=a.channels, width=a.width, height=a.height, seed=a.seed, device=device)
    leaves = {k: sc[k].clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "features")}
    opts = {} if a.backend == "gsplat" else dict(tile_size=a.tile_size, chunk_size=a.chunk_size, backward=a.torch_backward)
    bg = torch.ones(a.channels, device=device)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        sync(); torch.cuda.reset_peak_memory_stats(); mem0 = torch.cuda.memory_allocated()
    rss0 = maxrss_mb()
    fwd, bwd = [], []
    for i in range(a.warmup + a.repeats):
        for x in leaves.values(): x.grad = None
        sync(); t0 = time.perf_counter()
        f, alpha, depth = rasterize(**{**sc, **leaves}, background=bg, backend=a.backend, **opts)
        sync(); t1 = time.perf_counter()
        (f.mean() + alpha.mean() + 1e-3 * depth.mean()).backward()
        sync(); t2 = time.perf_counter()
        if i >= a.warmup: fwd.append(t1 - t0); bwd.append(t2 - t1)
    peak = (torch.cuda.max_memory_allocated() - mem0) / 2 ** 20 if cuda else maxrss_mb() - rss0
    return dict(backend=a.backend, device=torch.cuda.get_device_name() if cuda else f"cpu x{torch.get_num_threads()} threads",
                n=a.n, batch=a.batch, channels=a.channels, size=f"{a.height}x{a.width}",
                fwd_ms=1e3 * statistics.median(fwd), bwd_ms=1e3 * statistics.median(bwd),
                peak_mb=peak, mem_kind="cuda max_allocated" if cuda else "maxrss delta",
                alpha_mean=float(alpha.mean()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000], help="numbers of Gaussians per image")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--backends", nargs="+", default=None, help="torch and/or gsplat (default: torch, plus gsplat when CUDA is present)")
    ap.add_argument("--device", default="cpu", help="device for the torch backend (cpu or cuda)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--tile-size", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=2 ** 21)
    ap.add_argument("--torch-backward", default="manual", choices=["manual", "autograd"], help="torch backend: closed-form backward or autograd")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # internal: run one config, print JSON
    ap.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(a))); return
    import torch
    backends = a.backends or (["torch", "gsplat"] if torch.cuda.is_available() else ["torch"])
    common = [f"--{k.replace('_', '-')}={getattr(a, k)}" for k in
              ("channels", "width", "height", "batch", "device", "repeats", "warmup", "threads", "tile_size", "chunk_size", "torch_backward", "seed")]
    rows = []
    for backend in backends:
        for n in a.sizes:
            r = subprocess.run([sys.executable, __file__, "--one", f"--backend={backend}", f"--n={n}", *common],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"[bench] {backend} N={n} failed:\n{r.stderr[-2000:]}", file=sys.stderr); continue
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(f"[bench] done {backend} N={n}", file=sys.stderr)
    extra = "" if backends == ["gsplat"] else f", torch backend: tile {a.tile_size}, chunk {a.chunk_size}, backward {a.torch_backward}"
    print(f"\nrasterize: C={a.channels}, {a.height}x{a.width}, batch {a.batch}, median of {a.repeats} after {a.warmup} warm-up{extra}")
    head = f"| {'backend':7} | {'device':22} | {'N':>6} | {'fwd ms':>8} | {'bwd ms':>8} | {'fwd+bwd ms':>10} | {'peak MB':>8} | {'memory':18} | {'mean alpha':>10} |"
    print(head); print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['backend']:7} | {r['device'][:22]:22} | {r['n']:>6} | {r['fwd_ms']:>8.1f} | {r['bwd_ms']:>8.1f} | "
              f"{r['fwd_ms'] + r['bwd_ms']:>10.1f} | {r['peak_mb']:>8.1f} | {r['mem_kind']:18} | {r['alpha_mean']:>10.3f} |")


if __name__ == "__main__":
    main()
