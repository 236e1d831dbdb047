"""Checks of a trained model folder (`save_pretrained` layout) before torch or transformers read it, so that a
folder missing its weights or tokenizer, or holding truncated weights, gets one line naming the folder and what is
wrong instead of a library's traceback or a misleading message."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from videobert.core.errors import ModelFolderError

WEIGHTS = "model.safetensors"
# A tokenizer folder holds its vocabulary in one of these (WordPiece's vocab.txt, or a fast tokenizer's file).
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")
_HEADER_LEN_BYTES = 8  # safetensors: a little-endian u64 header length, the JSON header, then the tensors' bytes


def check_safetensors(path: Path) -> None:
    """ModelFolderError when `path` is not a complete safetensors file: its header unreadable, or its tensors' bytes
    reaching past the end of the file (a truncated or overwritten file)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(_HEADER_LEN_BYTES))
            if n > size - _HEADER_LEN_BYTES:
                raise ValueError(f"its header claims {n} bytes of a {size}-byte file")
            header = json.loads(f.read(n))
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{path} is damaged: not a safetensors file ({str(exc)[:120]})") from None
    if _HEADER_LEN_BYTES + n + end != size:
        raise ModelFolderError(f"{path} is damaged: its tensors need {_HEADER_LEN_BYTES + n + end} bytes, the file has "
                           f"{size} (truncated or overwritten)")


def check_model_folder(folder: Path, what: str = "checkpoint folder", hint: str = "train one first") -> None:
    """ModelFolderError naming `folder` and the first thing missing or damaged: config.json, the weights, the tokenizer."""
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a {what}: no such folder ({hint})")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelFolderError(f"{folder} is not a {what}: no config.json ({hint})")
    try:
        json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{config} is damaged: not JSON ({str(exc)[:120]})") from None
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ModelFolderError(f"{folder} has no {WEIGHTS}: the model's weights are missing")
    check_safetensors(weights)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelFolderError(f"{folder} has no tokenizer ({' or '.join(TOKENIZER_FILES)} missing): save the "
                           "tokenizer beside the model, as training does")
