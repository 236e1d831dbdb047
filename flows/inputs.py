"""What a flow run reads from its parameters: the paths it is given and its effective `params.yaml` values.

A flow started from the Prefect UI runs in another process, often on another machine: a relative path in its
form resolves against that process's working folder (the folder `videobert serve` was started in, or a
worker's). Every run logs that folder and the params file it read, both absolute, and any error about a path
names the absolute path and the folder relative paths resolve against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from videobert.core.errors import SettingsError
from videobert.core.params import DEFAULT_PARAMS_FILE, Params, apply_override, load_params, override_items

__all__ = ["BASE_NOTE", "MODEL_NOTE", "OVERRIDES_NOTE", "TOKENS_INDEX_NOTE", "PARAMS_FILE_NOTE", "EffectiveParams", "base_dir", "effective_params",
           "input_path", "with_notes"]

BASE_NOTE = ("a relative path resolves against the working folder of the process that runs the flow (where "
             "`videobert serve` was started; each run logs it)")
PARAMS_FILE_NOTE = (f"the params file (YAML, sections of videobert/core/params.py); {BASE_NOTE}. Only the default "
                    f"`{DEFAULT_PARAMS_FILE}` may be missing: then the paper's built-in defaults are used and the "
                    "run's log says so; any other file that is missing is an error. Empty: the paper's defaults")
MODEL_NOTE = ("a trained model folder (`videobert train` prints it; a relative path resolves against the working "
              "folder of the process that runs the flow), or the key of a finished training run or a unique prefix "
              "of one (its model fetched from the store); empty: the latest finished training run")
TOKENS_INDEX_NOTE = ("the tokens index of the labelled videos: a content hash or a unique prefix of one "
                     "(`videobert dataset versions` lists them), or a file (a relative path resolves against the "
                     "working folder of the process that runs the flow); empty: the latest registered")
OVERRIDES_NOTE = ("params.yaml values changed for this run only (empty fields keep the file's values); they enter "
                  "the fingerprints like the file's values, so the stages that read them run again")


F = TypeVar("F", bound=Callable[..., Any])


def with_notes(fn: F) -> F:
    """Put the notes above in place of their names (BASE_NOTE, PARAMS_FILE_NOTE, OVERRIDES_NOTE ...) in `fn`'s
    docstring, whose `Args:` section Prefect turns into the descriptions of its form; apply under `@flow`."""
    doc = fn.__doc__ or ""
    for name in ("PARAMS_FILE_NOTE", "OVERRIDES_NOTE", "MODEL_NOTE", "TOKENS_INDEX_NOTE", "BASE_NOTE"):
        doc = doc.replace(name, globals()[name])
    fn.__doc__ = doc
    return fn


def base_dir() -> Path:
    """The folder relative paths resolve against: this process's working folder."""
    return Path.cwd()


def input_path(path: str | Path, what: str, must_exist: bool = True, kind: str = "file") -> Path:
    """`path` made absolute against `base_dir()`; SettingsError naming the absolute path (and the base of
    relative paths) when it must exist as a `kind` ("file" or "folder") and does not."""
    given = Path(path).expanduser()
    full = given if given.is_absolute() else base_dir() / given
    if must_exist and not (full.is_file() if kind == "file" else full.is_dir()):
        where = "" if given.is_absolute() else f" (relative paths resolve against {base_dir()}, the flow's working folder)"
        state = "does not exist" if not full.exists() else f"is not a {kind}"
        raise SettingsError(f"{what} {full} {state}{where}")
    return full


class EffectiveParams(BaseModel):
    """The parameters a run uses and where they come from (recorded in its summary and logs)."""

    params: Params
    params_file: str | None  # absolute path of the file read; None: the paper's built-in defaults
    overrides: dict[str, Any]  # "section.key" -> value


def effective_params(params_file: str | None, overrides: BaseModel | dict[str, Any] | None,
                     logger: Any = None) -> EffectiveParams:
    """The params file's values (see PARAMS_FILE_NOTE) with `overrides` applied and validated; logs both."""
    logger = logger or logging.getLogger(__name__)
    path: str | None = None
    if not params_file:
        params, shown = Params(), "the paper's built-in defaults"
    elif Path(params_file) == DEFAULT_PARAMS_FILE and not input_path(params_file, "", must_exist=False).exists():
        params, shown = Params(), f"the paper's built-in defaults (no {input_path(params_file, '', must_exist=False)})"
    else:
        path = str(input_path(params_file, "params file"))
        params, shown = load_params(path), path
    changed = override_items(overrides)
    params = apply_override(params, overrides)
    logger.info("params: %s%s; working folder %s", shown, f", overridden: {changed}" if changed else "", base_dir())
    return EffectiveParams(params=params, params_file=path, overrides=changed)
