"""Clip features: probing and decoding videos into clips, the clip extractors (S3D, I3D, a baseline stand-in),
the per-video features files, and the `features` stage."""
