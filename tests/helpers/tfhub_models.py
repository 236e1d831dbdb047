"""Small SavedModels with the signatures and outputs of TF-Hub's video models, built by tests.

* `build_s3d_like`: a TF2 SavedModel with MIL-NCE S3D's `video` signature: float32 (B, T, H, W, 3) in
  [0, 1] -> {"mixed_5c": (B, 1024), "video_embedding": (B, 512)}. Its mixed_5c is relu(mean RGB @ W), so a
  test can compute the expected features exactly.
* `build_i3d_like`: a TF1 Hub-style SavedModel like I3D Kinetics-600: a 5-d input placeholder, a
  `RGB/inception_i3d/Mixed_5c/concat` block of 1024 channels, and a `default` signature giving 600 logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def s3d_weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, 1024)).astype(np.float32)


def build_s3d_like(folder: Path, seed: int = 0) -> Path:
    """The S3D-like model; another `seed` gives other weights of the same shapes (another weights hash)."""
    import tensorflow as tf

    class S3DLike(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(s3d_weights(seed))
            self.proj = tf.Variable(np.random.default_rng(1).standard_normal((1024, 512)).astype(np.float32) / 32)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, 3], tf.float32)])
        def video(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            pooled = tf.reduce_mean(inputs, axis=[1, 2, 3])  # (B, 3)
            mixed = tf.nn.relu(pooled @ self.w)  # (B, 1024)
            return {"mixed_5c": mixed, "video_embedding": mixed @ self.proj}

    module = S3DLike()
    tf.saved_model.save(module, str(folder), signatures={"video": module.video})
    return folder


def expected_s3d(clips: np.ndarray) -> np.ndarray:
    """What build_s3d_like's mixed_5c gives for uint8 clips (B, T, H, W, 3)."""
    pooled = (clips.astype(np.float32) / 255.0).mean(axis=(1, 2, 3))
    return np.maximum(pooled @ s3d_weights(), 0.0)


def build_i3d_like(folder: Path) -> Path:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, None, 3], name="input_frames")
        w = tf.compat.v1.get_variable("w", initializer=s3d_weights())
        with tf.compat.v1.variable_scope("RGB/inception_i3d/Mixed_5c"):
            small = x[:, ::4, ::32, ::32, :]  # (B, T', H', W', 3)
            act = tf.nn.relu(tf.tensordot(small, w, axes=[[4], [0]]))  # (B, T', H', W', 1024)
            concat = tf.concat([act[..., :512], act[..., 512:]], axis=4, name="concat")
        logits_w = tf.compat.v1.get_variable("logits_w", initializer=np.ones((1024, 600), np.float32) / 1024)
        logits = tf.matmul(tf.reduce_mean(concat, axis=[1, 2, 3]), logits_w, name="logits")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(folder))
            sig = tf.compat.v1.saved_model.predict_signature_def(inputs={"rgb_input": x}, outputs={"default": logits})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"default": sig})
            builder.save()
    return folder


def expected_i3d(clips: np.ndarray) -> np.ndarray:
    """Pooled Mixed_5c of build_i3d_like for uint8 clips."""
    small = clips[:, ::4, ::32, ::32, :].astype(np.float32) / 255.0
    act = np.maximum(np.tensordot(small, s3d_weights(), axes=([4], [0])), 0.0)
    return act.mean(axis=(1, 2, 3))
