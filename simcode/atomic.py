"""Atomic writes: a reader sees the old content or the new, never half of either.

Files and directories are created with the permissions the process umask allows (as `open` and
`mkdir` would), not the owner-only ones `tempfile` uses for its temporaries.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask. Linux shows it in /proc; elsewhere reading it means setting it for a
    moment, which is why /proc comes first."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write; it replaces `path` when the block succeeds and is
    removed when it fails. It keeps `path`'s suffix, so writers that infer a format (savefig, savez)
    write the right one. A process killed mid-write leaves it: see `remove_partial_files`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_partial_files(directory: str | Path, names: Iterable[str]) -> None:
    """Remove the temporaries `replacing` left in `directory`, when a process was killed while
    writing one of `names` (file names such as 'curve.csv', or globs such as 'iter-*.pkl')."""
    directory = Path(directory)
    for name in names:
        pattern = Path(name)
        for leftover in directory.glob(f".{pattern.stem}.*{pattern.suffix}"):
            if leftover.is_file() and not leftover.is_symlink():
                leftover.unlink()


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp, open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


STAGING_TAG = "simcode-"  # a staging directory is .NAME.simcode-PID.XXXX: the pid of the process filling it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


def remove_dead_staging(final: Path) -> None:
    """Remove the staging directories of `final` whose process has died without cleaning up (a kill
    -9). Only directories named as `staging_dir` names them are looked at, and only when their
    process no longer exists; the `.NAME.old.` directory of an interrupted publish is never removed
    (it may hold the one copy of the previous run)."""
    prefix = f".{final.name}.{STAGING_TAG}"
    for leftover in final.parent.glob(f"{glob.escape(prefix)}*"):
        pid = leftover.name[len(prefix):].split(".")[0]
        if pid.isdigit() and leftover.is_dir() and not leftover.is_symlink() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def staging_dir(final: str | Path) -> Path:
    """A fresh sibling directory to fill before `publish_dir` moves it into place; leftovers of
    killed processes for the same `final` are removed first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_staging(final)
    staged = Path(tempfile.mkdtemp(prefix=f".{final.name}.{STAGING_TAG}{os.getpid()}.", dir=final.parent))
    try:
        os.chmod(staged, 0o777 & ~current_umask())
    except BaseException:
        staged.rmdir()
        raise
    return staged


def publish_dir(staged: Path, final: str | Path) -> None:
    """Move a filled staging directory to `final`, replacing an older one (the caller has checked
    that what is there may be replaced). If the move fails, the older one is put back."""
    final = Path(final)
    if not final.exists():
        os.replace(staged, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
    os.replace(final, old / "x")
    try:
        os.replace(staged, final)
    except BaseException:
        os.replace(old / "x", final)  # if this fails too, the older one stays in `old`, not deleted
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def building_dir(final: str | Path, before_publish=None) -> Iterator[Path]:
    """A staging directory to fill; it replaces `final` when the block succeeds and is removed,
    with whatever was written in it, when anything fails. `before_publish()` runs just before the
    move (a last check of what is at `final`)."""
    staged = staging_dir(final)
    try:
        yield staged
        if before_publish is not None:
            before_publish()
        publish_dir(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise

