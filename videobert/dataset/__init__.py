"""Dataset stages over the finished videos: the manifest, the visual codebook with its pictures, and each
video's tokens. Every output is deterministic, so `dvc repro` on the same inputs gives the same bytes."""
