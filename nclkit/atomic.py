"""Files written whole or not at all: a kill, a power cut, a full disk or a read-only folder never
leaves a half-written file where a good one was expected.

Every file nclkit writes for later reading (checkpoints, logs, configs, summaries, reports,
manifests, predicted maps) goes through `write_atomic`: the bytes go to `NAME.tmp` beside the file,
are flushed to the disk (fsync), and the temporary file is renamed over `NAME` in one step (the
rename is atomic on POSIX and Windows file systems). A process killed at any moment leaves either
the earlier `NAME` or the new one, and at worst a `NAME.tmp`, which is never read and is removed by
the next run in that folder. A write that fails (disk full, folder turned read-only) raises
`WriteError`: one line naming the file, the system's reason and whether the earlier file is intact.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["WriteError", "write_atomic", "write_text_atomic", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"

# What to do about a failed write, by the system's reason.
_SPACE = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
_PERMISSION = (errno.EROFS, errno.EACCES, errno.EPERM)


class WriteError(OSError):
    """A file could not be written; the message names it, the reason, and what was kept."""

    def __init__(self, path: str | os.PathLike, err: OSError) -> None:
        path = Path(path)
        reason = err.strerror or str(err) or type(err).__name__
        kept = f"the earlier {path.name} is intact" if path.exists() else f"no {path.name} was written"
        if err.errno in _SPACE:
            todo = "free some space (or choose a folder on another disk)"
        elif err.errno in _PERMISSION:
            todo = "make the folder writable (or choose another folder)"
        else:
            todo = "check the disk and the folder"
        super().__init__(err.errno, f"cannot write {path} ({reason}); {kept}; {todo}")
        self.path = path

    def __str__(self) -> str:  # one line, without the "[Errno N]" prefix
        return self.strerror


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind `err`, if any (PyTorch reports a failed write as a RuntimeError raised from it)."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, OSError):
            return err
        err = err.__cause__ or err.__context__
        seen += 1
    return None


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to the disk; a no-op where folders cannot be opened (Windows)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (network, FUSE) do not sync folders
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write `path` whole or not at all: `write(fh)` fills `path.tmp`, which is synced and renamed over `path`.

    Raises:
        WriteError: the disk is full, the folder is read-only ...: `path` (if it existed) is untouched
            and no .tmp is left behind.
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # a full disk, Ctrl-C mid-write: drop the partial file, keep the old one
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only folder: there is no .tmp to remove
            pass
        cause = _os_error(err) if isinstance(err, Exception) else None  # Ctrl-C stays Ctrl-C
        if cause is not None and not isinstance(cause, WriteError):
            raise WriteError(path, cause) from None
        raise
    _sync_folder(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`write_atomic` for UTF-8 text."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda fh: fh.write(data))
