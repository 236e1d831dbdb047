"""A semantic check of the whole decode path on real photographs: scikit-image's photos made into videos (a still,
a slow pan, a rotated phone video with its rotation tag) go through `videobert ingest --local` with the
`efficientnet` extractor, and the network's own ImageNet head, run on the middle frames the features stage stored,
names what each photo shows in its top 5.

The network is robust: on these photos its top 5 survives swapped channels or values in [0, 1]. So the check has a
second, stricter half: what the network sees in the stored frames (its 1280-d features) must match what it sees in
the photo itself, cropped and scaled by an independent path (PIL), at a cosine of at least SAME_VIEW. A wrong colour
order, value range or crop anywhere between the video file and the stored frames breaks that, where no synthetic
test would notice. The test shows it can: the same check on the same frames with the channels swapped, or the
values in [0, 1] instead of [-1, 1], fails.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Project
from tests.test_cli import run_cli

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (installed by make setup) ships the photos")
pytest.importorskip("efficientnet_lite_pytorch", reason="the efficientnet extractor's architecture (make setup)")

FPS = 25  # the made videos' rate (the pipeline samples 20 fps from it)
SECONDS = 2.0  # one 1.5 s clip and a padded one
TOP = 5
# Mean cosine between the network's features of the stills' stored frames and of the photos they show, prepared by
# PIL: the midpoint between what was measured here through `videobert ingest` with the right input, 0.938 (0.90 to
# 0.98 per frame: H.264, yuv420p and JPEG losses), and with a broken one: 0.836 with swapped channels, 0.854 with
# values in [0, 1].
SAME_VIEW = 0.895

# ImageNet-1k class indices that name what each photo shows (the network's classifier order)
CAT = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat", 287: "lynx"}
COFFEE = {504: "coffee mug", 967: "espresso", 968: "cup"}
ROCKET = {657: "missile", 744: "projectile", 812: "space shuttle"}
MOTORBIKE = {665: "moped", 670: "motor scooter", 671: "mountain bike"}


def _encode(frames: list[np.ndarray], path: Path, extra: list[str] | None = None) -> None:
    """H.264 (yuv420p) at FPS from RGB frames, through ffmpeg's rawvideo input."""
    h, w = frames[0].shape[:2]
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS),
           "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", *(extra or []), str(path)]
    subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)


def _even(img: np.ndarray) -> np.ndarray:
    """Crop to even sides (yuv420p needs them)."""
    return img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]


@dataclass(frozen=True)
class PhotoVideo:
    """A video made from a photo: what it shows (ImageNet classes) and, for a still, the photo as displayed."""

    classes: dict[int, str]
    photo: np.ndarray | None  # upright RGB; None for the pan (each frame shows another window)


def make_photo_videos(folder: Path) -> dict[str, PhotoVideo]:
    """The photo videos in `folder`, by video id."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(SECONDS * FPS)
    # a still: the cat, 451 x 300 (the decode path crops the centred square)
    cat = _even(skimage_data.chelsea())
    _encode([cat] * n, folder / "still-cat.mp4")
    # a slow pan: a 360-pixel window crossing the 600-pixel-wide coffee photo from left to right
    coffee = _even(skimage_data.coffee())
    side = 360
    xs = np.linspace(0, coffee.shape[1] - side, n).round().astype(int)
    _encode([coffee[20:20 + side, x:x + side] for x in xs], folder / "pan-coffee.mp4")
    # a phone video: stored turned a quarter clockwise, tagged so that players (and our decoder) turn it upright
    rocket = _even(skimage_data.rocket())
    plain = folder.parent / "rocket-untagged.mp4"
    _encode([np.ascontiguousarray(np.rot90(rocket, k=-1))] * n, plain)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(folder / "phone-rocket.mp4")], check=True)
    # a still of the motorcycle (the left view of scikit-image's stereo pair)
    bike = _even(skimage_data.stereo_motorcycle()[0])
    _encode([bike] * n, folder / "still-motorbike.mp4")
    return {"still-cat": PhotoVideo(CAT, cat), "pan-coffee": PhotoVideo(COFFEE, None),
            "phone-rocket": PhotoVideo(ROCKET, rocket), "still-motorbike": PhotoVideo(MOTORBIKE, bike)}


def reference_view(photo: np.ndarray, size: int = 224) -> np.ndarray:
    """The photo as the decode path should deliver it, made independently: PIL's centred square, scaled."""
    from PIL import Image

    h, w = photo.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return np.asarray(Image.fromarray(photo[y0:y0 + side, x0:x0 + side]).resize((size, size), Image.BICUBIC))


def _stored_middle_frames(video_id: str) -> np.ndarray:
    """The middle frames the features stage stored for `video_id`, (N, S, S, 3) uint8."""
    from videobert.core.runtime import get_runtime
    from videobert.db import repository as repo
    from videobert.features.clips import FrameReader

    rt = get_runtime()
    view = repo.stage_views(rt.db, ["features"])[(video_id, "features")]
    assert view.status == "done", view
    with rt.store.local_path(view.artifact("frames").key, verify=True) as path, FrameReader(path) as reader:
        return np.stack([reader.image(i) for i in range(len(reader))])


def check(extractor, frames: dict[str, np.ndarray], videos: dict[str, PhotoVideo], **wrong: object) -> list[str]:
    """What does not hold: every stored frame has one of its photo's classes in the head's top 5, and the network's
    features of the stills' frames match those of the photos themselves (mean cosine >= SAME_VIEW). `wrong`
    feeds the frames as a broken decode path would (channels swapped, another value range)."""
    problems = []
    cosines = []
    for vid, stack in frames.items():
        logits = extractor.classify(stack, **wrong)
        top = np.argsort(-logits, axis=1)[:, :TOP]
        if not all(set(row.tolist()) & set(videos[vid].classes) for row in top):
            problems.append(f"{vid}: top {TOP} {top.tolist()}, none of {sorted(videos[vid].classes)}")
        photo = videos[vid].photo
        if photo is not None:
            seen = extractor.pooled(stack, **wrong)
            ref = extractor.pooled(reference_view(photo, stack.shape[1])[None])[0]
            cosines.extend((seen @ ref / np.linalg.norm(seen, axis=1) / np.linalg.norm(ref)).tolist())
    if cosines and float(np.mean(cosines)) < SAME_VIEW:
        problems.append(f"features of the stored frames vs the photos: mean cosine {np.mean(cosines):.3f} < {SAME_VIEW} "
                        f"({np.round(cosines, 3).tolist()})")
    return problems


@pytest.mark.slow
def test_real_photos_through_ingest_are_named_by_the_imagenet_head(project: Project) -> None:
    videos = make_photo_videos(project.root / "videos")
    project.write_params("features:\n  extractor: efficientnet\n")
    r = run_cli("ingest", "--local", "videos", "--quiet", cwd=project.root)
    assert r.returncode == 0, r.stdout + r.stderr

    from videobert.core.params import FeaturesParams
    from videobert.features.efficientnet import EfficientNetExtractor

    frames = {vid: _stored_middle_frames(vid) for vid in videos}
    for vid, stack in frames.items():
        assert stack.shape[1:] == (224, 224, 3), (vid, stack.shape)
    p = FeaturesParams(extractor="efficientnet")
    extractor = EfficientNetExtractor(p.fps, p.frames_per_clip, p.frame_size, p.batch_size)
    assert check(extractor, frames, videos) == []
    # The check can fail: a decode path that swapped the channels, gave values in [0, 1], or ignored the rotation
    # tag (the rocket's frames on their side) is caught.
    assert check(extractor, frames, videos, channels="bgr") != []
    assert check(extractor, frames, videos, value_range=(0.0, 1.0)) != []
    sideways = {**frames, "phone-rocket": np.ascontiguousarray(np.rot90(frames["phone-rocket"], k=-1, axes=(1, 2)))}
    assert check(extractor, sideways, videos) != []


def test_photo_videos_decode_as_their_photos(tmp_path: Path) -> None:
    """The made videos are what the test means: the phone video is stored on its side and decodes upright."""
    from videobert.features.decode import Sampling, iter_frames
    from videobert.features.media import probe

    make_photo_videos(tmp_path / "v")
    assert probe(tmp_path / "v" / "phone-rocket.mp4").rotation in (90, -90, 270)
    frame = next(f for _, f in iter_frames(tmp_path / "v" / "phone-rocket.mp4", Sampling()))
    upright = reference_view(_even(skimage_data.rocket()))
    assert np.abs(frame.astype(int) - upright.astype(int)).mean() < 12
