"""Benchmark the synthetic data generator (ditgaze.synth_data.render_subject): images per second on a fixed small set,
in ONE process with ONE torch thread, at the `data` defaults of params.yaml (128 px, shadows on).

The set: 3 train subjects x 2 frames x 3 cameras (18 images) + 1 test subject x 8 images (4 frames x 4 cameras) = 26
images, the same layouts as the default data set. Files are not written (render time only).

  PYTHONPATH=. python scripts/bench_generate.py                       # this checkout's ditgaze
  python scripts/bench_generate.py --src /tmp/gen_old                 # another copy of the package (its parent folder),
                                                                      # e.g. git archive HEAD ditgaze | tar -x -C /tmp/gen_old
  python scripts/bench_generate.py --save /tmp/new.npz                # also keep every array, to compare two versions:
  python scripts/bench_generate.py --compare /tmp/old.npz /tmp/new.npz  # image / mask / landmark differences
  python scripts/bench_generate.py --compare data/a data/b              # ... between two generated data folders

The machine may be shared: compare two versions by alternating runs (old, new, old, new, ...) and take medians;
images per CPU-second (process time) is less sensitive to other jobs than the wall-clock rate.
"""
import argparse, sys, time


def bench_set():
    "(config, [(split name, split, subject index)]) of the fixed benchmark set."
    from ditgaze.synth_data import DataConfig, SplitConfig
    cfg = DataConfig(image_size=128, shadows=True, supersample=1, workers=1,
                     train=SplitConfig(subjects=3, frames=2, images=0, cameras_per_frame=3),
                     test=SplitConfig(subjects=1, images=8, cameras_per_frame=4))
    return cfg, [("train", cfg.train, i) for i in range(3)] + [("test", cfg.test, 0)]


def run(a) -> None:
    if a.src: sys.path.insert(0, a.src)
    import numpy as np, torch
    import ditgaze
    from ditgaze.synth_data import make_rig, render_subject
    torch.set_num_threads(a.threads)
    cfg, subjects = bench_set()
    rig = make_rig(cfg.rig_distance, cfg.rig_yaw_deg, cfg.rig_pitch_deg, cfg.seed)
    rates, cpu_rates, out = [], [], {}
    for r in range(a.repeat):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        for name, sp, i in subjects:
            arrays, attrs = render_subject(cfg, name, sp, i, rig)
            n += len(arrays["face_patch"])
            if r == 0: out.update({f"{attrs['subject']}/{k}": v for k, v in arrays.items()})
        rates.append(n / (time.perf_counter() - t0)); cpu_rates.append(n / (time.process_time() - c0))
    med = lambda x: sorted(x)[len(x) // 2]
    print(f"{ditgaze.__file__}: {n} images, {a.threads} thread(s): {med(rates):.2f} img/s wall, {med(cpu_rates):.2f} img per CPU-s"
          + (f" (median of {a.repeat}: " + ", ".join(f"{x:.2f}" for x in rates) + ")" if a.repeat > 1 else ""))
    if a.save: np.savez_compressed(a.save, **out)


def load_arrays(path: str) -> dict:
    "{subject/key: array} of a --save file, or of every subject file under a generated data folder."
    import numpy as np
    from pathlib import Path
    if not Path(path).is_dir(): return dict(np.load(path))
    import h5py
    out = {}
    for f in sorted(Path(path).rglob("*.h5")):
        with h5py.File(f, "r") as h: out.update({f"{f.stem}/{k}": h[k][()] for k in h.keys()})
    return out


def compare(old_path: str, new_path: str) -> None:
    "Differences between two --save files (or generated data folders) of the same set."
    import numpy as np
    A, B = load_arrays(old_path), load_arrays(new_path)
    assert sorted(A) == sorted(B), "different arrays"
    same = [k for k in A if A[k].shape == B[k].shape and A[k].dtype == B[k].dtype and (A[k] == B[k]).all()]
    print(f"{len(same)}/{len(A)} arrays identical")
    cat = lambda F, key: np.concatenate([np.atleast_1d(F[k]) for k in sorted(F) if k.endswith("/" + key)])
    a, b = cat(A, "face_patch").astype(int), cat(B, "face_patch").astype(int)
    d = np.abs(a - b)
    px = d.max(-1) > 0
    print(f"face_patch {a.shape}: max |diff| {d.max()} grey levels, mean {d.mean():.5f}, "
          f"pixels differing {100 * px.mean():.3f}% ({px.sum()} of {px.size}), "
          f"differing by > 8 levels {100 * (d.max(-1) > 8).mean():.4f}%")
    for key in ("head_mask", "left_eye_mask", "right_eye_mask"):
        flip = cat(A, key) != cat(B, key)
        print(f"{key}: {flip.sum()} pixels flip ({100 * flip.mean():.4f}%), max per image {flip.sum((1, 2)).max()}")
    for key, unit in (("facial_landmarks", "px"), ("facial_landmarks_3d", "mm")):
        e = np.linalg.norm(cat(A, key).astype(np.float64) - cat(B, key), axis=-1)
        print(f"{key}: max {e.max():.2e} {unit}, mean {e.mean():.2e} {unit}")
    others = sorted({k.split("/", 1)[1] for k in A} - {"face_patch", "head_mask", "left_eye_mask", "right_eye_mask",
                                                              "facial_landmarks", "facial_landmarks_3d"})
    for key in others:
        x, y = cat(A, key), cat(B, key)
        if not np.array_equal(x, y): print(f"{key}: max |diff| {np.abs(x.astype(np.float64) - y).max():.2e}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=None, help="folder holding the `ditgaze` package to benchmark (default: the import path)")
    ap.add_argument("--repeat", type=int, default=1, help="timed passes over the set")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--save", default=None, help="npz file for every rendered array (first pass)")
    ap.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), default=None, help="compare two --save files (or data folders) and exit")
    a = ap.parse_args()
    compare(*a.compare) if a.compare else run(a)
