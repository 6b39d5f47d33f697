"""Output folders, checked before any work starts (writable, a finished run never silently replaced,
one process per run folder), and what a run folder holds (its log)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["RUN_FILES", "LOCK_FILE", "ensure_writable_dir", "prepare_run_dir", "claim_run_dir", "last_checkpoint_note",
           "read_log"]

# The files that make a folder a run: finding any of them means earlier work would be lost.
RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "summary.json")
# What a run also writes, removed with it by `overwrite` (and the unusable checkpoints `--resume` set aside).
_ALSO_REMOVED = ("config.json", "tensorboard", "forged")
_SET_ASIDE = "*.unusable*.pt"
# The file that says which process writes a run folder now (its pid, under an OS lock).
LOCK_FILE = "nclkit.lock"


def ensure_writable_dir(folder: str | os.PathLike, what: str = "--out") -> Path:
    """Create `folder` if needed and prove it takes a file; ValueError naming it otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder}: is a file, not a folder; choose another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nclkit-write-test-"):
            pass
    except OSError as err:
        held = [name for name in RUN_FILES if (folder / name).exists()]
        todo = (f"its files ({', '.join(held)}) are intact; make the folder writable to continue the run, or copy it "
                "to a writable folder and continue there with --resume") if held else "choose another folder"
        reason = err.strerror or type(err).__name__
        raise ValueError(f"{what} {folder}: cannot write there ({reason}); {todo}") from None
    return folder


def prepare_run_dir(out_dir: str | os.PathLike, resume: bool, overwrite: bool, main_process: bool = True) -> Path:
    """Make `out_dir` ready for a run: refuse to replace an earlier run unless told, drop stale .tmp files.

    Args:
        resume: the run continues from out_dir/last.pt, so the folder is meant to hold one.
        overwrite: delete an earlier run's files first.
        main_process: False in the other DDP processes: they check the same (and fail alike) but delete nothing.
    Raises:
        ValueError: the folder holds a run and neither flag was given, both were given, or it is not writable.
    """
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite deletes it: choose one")
    out_dir = ensure_writable_dir(out_dir)
    held = [name for name in RUN_FILES if (out_dir / name).exists()]
    if held and not resume and not overwrite:
        raise ValueError(f"{out_dir} already holds a run ({', '.join(held)}); continue it with --resume, "
                         "or start over with --overwrite (deletes it)")
    if not main_process:
        return out_dir
    if held and not resume:
        for target in [out_dir / name for name in RUN_FILES + _ALSO_REMOVED] + list(out_dir.glob(_SET_ASIDE)):
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    for stale in out_dir.glob("*.tmp"):  # left by a crash mid-save: never a valid file
        stale.unlink(missing_ok=True)
    return out_dir


@contextmanager
def claim_run_dir(out_dir: str | os.PathLike, main_process: bool = True) -> Iterator[Path]:
    """Hold `out_dir` for this process while the block runs, so that two runs never write one folder.

    LOCK_FILE holds the owner's pid under an exclusive OS lock (flock; a byte lock on Windows), which
    ends with its process however that ends: a lock file left by a killed process is taken over, and
    the file is removed when the block ends, exceptions and Ctrl-C included. Other DDP processes
    (`main_process=False`) claim nothing: their main process holds the folder for them.

    Raises:
        ValueError: another process holds the folder (its pid named), or the folder is not writable.
    """
    out_dir = ensure_writable_dir(out_dir)
    if not main_process:
        yield out_dir
        return
    lock = out_dir / LOCK_FILE
    fd = _lock(lock)
    try:
        yield out_dir
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _lock(lock: Path) -> int:
    """Open and lock `lock`, write this process's pid into it; returns the descriptor that holds the lock."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        held = _os_lock(fd)
        if held is False:
            owner = _read_owner(fd)
            os.close(fd)
            raise ValueError(f"{lock.parent} is in use by another nclkit process (pid {owner}, lock file {lock.name}); "
                             "wait for it to finish, or choose another --out")
        if _same_file(fd, lock):  # not a file its last owner removed while we opened it
            break
        os.close(fd)
    if held is None:
        warnings.warn(f"{lock.parent}: this file system cannot lock files; make sure no other run writes there",
                      stacklevel=4)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _os_lock(fd: int) -> bool | None:
    """The OS's exclusive lock on `fd`, without waiting: True taken, False held by another process,
    None where the file system has no locks."""
    try:
        import fcntl
    except ImportError:  # Windows: a lock on the first byte, released by the OS when the process ends
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: some network and FUSE file systems
        return None
    return True


def _read_owner(fd: int) -> str:
    try:
        return os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
    except OSError:  # Windows: the owner's lock covers the bytes
        return "unknown"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def last_checkpoint_note(run_dir: str | os.PathLike) -> str:
    """Where a run's last checkpoint is and its epoch (from the log, written after it), for messages."""
    last = Path(run_dir) / "last.pt"
    if not last.is_file():
        return "no checkpoint was written"
    try:
        rows = read_log(last.parent)
    except ValueError:  # a damaged log: the note still names the checkpoint
        rows = []
    epoch = rows[-1].get("epoch") if rows else None
    return f"the last checkpoint is {last}" + (f" (epoch {epoch})" if epoch else "")


def read_log(run: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run folder's log.jsonl, one per finished epoch: loss terms, learning rate, speed
    and, on validated epochs, `val_pixel_f1` and `val_pixel_auc` ([] before the first epoch)."""
    log = Path(run) / "log.jsonl"
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
