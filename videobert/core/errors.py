"""Error types shared by the whole pipeline.

Every error a user can meet is a subclass of `VideobertError`, carries a message that names the offending
value, and says whether retrying can help (`retryable`). Per-video stages record `type(err).__name__`
and `str(err)` in the database, so the names here are part of the user-visible contract.
"""

from __future__ import annotations


class VideobertError(Exception):
    """Base class of every error raised on purpose by this project."""

    #: True when the same call may succeed later (network, 5xx, lock timeouts); False when it never will.
    retryable: bool = False


class SettingsError(VideobertError, ValueError):
    """A setting has a wrong value; the message names the setting and its value (never a secret's)."""


class InvalidIdError(VideobertError, ValueError):
    """An id (video id, stage name, object name) is not safe to use in keys, paths or queries."""


# --- artifact store ---------------------------------------------------------------------------------


class StoreError(VideobertError):
    """Base class of artifact store errors."""


class StoreUnavailableError(StoreError):
    """The artifact store cannot be reached (connection refused, DNS, timeout, 5xx)."""

    retryable = True


class StoreFullError(StoreError):
    """The store's disk or quota is full (ENOSPC, EDQUOT): retryable once space is freed."""

    retryable = True


class ObjectNotFoundError(StoreError, KeyError):
    """No object is stored under the key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class IntegrityError(StoreError):
    """An object's content does not match its recorded sha256 (or a stage output failed verification)."""


class UpstreamIntegrityError(IntegrityError):
    """A stage's input (another stage's output) does not verify: that stage is marked to run again, and so is
    this one (retryable: the next plain run redoes both, in order)."""

    retryable = True


class StoreConfigError(StoreError, SettingsError):
    """The store is reachable but misconfigured (missing bucket, bad credentials)."""


# --- tracking database ------------------------------------------------------------------------------


class DatabaseError(VideobertError):
    """Base class of tracking database errors."""


class DatabaseUnavailableError(DatabaseError):
    """The tracking database cannot be reached; the message names the URL without its password."""

    retryable = True


class SchemaOutOfDateError(DatabaseError):
    """The database schema is older (or newer) than this code; run `videobert db upgrade`."""


class UnknownVideoError(DatabaseError, KeyError):
    """A video id that is not registered in the database."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown video"


class ClaimLostError(DatabaseError):
    """A stage's claim expired and another worker took it over before this one finished."""

    retryable = True


# --- per-video stage outcomes -------------------------------------------------------------------------


class StageError(VideobertError):
    """A per-video stage failed; recorded on the video's stage row, never fatal for the run."""


class PermanentStageError(StageError):
    """A failure that retrying cannot fix (private video, corrupt file, too long)."""

    retryable = False


class TransientStageError(StageError):
    """A failure that a later attempt may not meet (network, throttling, 5xx)."""

    retryable = True


class ModelFolderError(VideobertError):
    """A trained model folder that is missing a file (config, weights, tokenizer) or holds a damaged one."""


class TrainingDivergedError(VideobertError):
    """A training loss became NaN or infinite: the run stops at that step (it never recovers by itself)."""
