"""What simcode may write over: its own run, training and study directories, and nothing else.

Every run, training and study directory simcode creates holds a marker file, `.simcode`, naming
its kind (run, train or study) and the version that wrote it. An existing path is replaced (a
run) or written into (a training, a study) only when it carries the marker of the same kind; an
empty directory may be used too. Anything else at the path (a regular file, a directory simcode
did not write or of another kind, a path under a regular file) is bad input: the command stops
before it creates or deletes anything and says what is there.

Directories written before the marker existed are accepted when their contents show they are
simcode's and hold nothing else, so that no file of the user's can be lost with them:
- a run: scenario.yaml, trace.csv and summary.json, and possibly policy.npz;
- a training: checkpoints/ with at least one iter-*.pkl, and the files `train` writes;
- a study: runs/ holding only run directories, and results.csv, report.md, plots/.
(Temporaries a killed simcode left next to those files are accepted as well.)

Trainings and studies hold an exclusive lock (fcntl.flock on `.simcode.lock` in their directory)
while they write, so that a second process on the same directory is refused instead of racing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import simcode
from simcode import atomic
from simcode.errors import BadInput

MARKER = ".simcode"
LOCK = ".simcode.lock"
KINDS = ("run", "train", "study")

# Older simcode's directories: the entries each must have, and the others it may have.
_OLDER_LAYOUTS = {
    "run": ({"scenario.yaml", "trace.csv", "summary.json"}, {"policy.npz"}),
    "train": ({"checkpoints"}, {"scenario.yaml", "policy.npz", "curve.csv", "curve.png", "summary.json"}),
    "study": ({"runs"}, {"results.csv", "report.md", "plots"}),
}


def mark(directory: Path, kind: str) -> None:
    """Say that `directory` is simcode's `kind` directory."""
    record = {"kind": kind, "simcode_version": simcode.__version__}
    atomic.write_text(Path(directory) / MARKER, json.dumps(record) + "\n")


def marked_kind(directory: Path) -> str | None:
    """The kind in `directory`'s marker; None when there is no readable marker."""
    try:
        kind = json.loads((Path(directory) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if kind in KINDS else None


def _is_partial_of(name: str, known: set[str]) -> bool:
    """Whether `name` is a temporary `atomic.replacing` makes for one of the `known` files."""
    return any(name.startswith(f".{Path(k).stem}.") and name.endswith(Path(k).suffix) for k in known)


def _strangers(entries, known: set[str]) -> list[str]:
    """The `entries` that are neither `known` files nor temporaries simcode makes for them."""
    return [e for e in entries if e not in known and not _is_partial_of(e, known)]


def _older_kind(directory: Path) -> str | None:
    """The kind of a directory an older simcode wrote (no marker), judged by its contents."""
    entries = {entry.name for entry in directory.iterdir()}
    for kind, (required, optional) in _OLDER_LAYOUTS.items():
        if not required <= entries or _strangers(entries, required | optional):
            continue
        if kind == "train" and not any((directory / "checkpoints").glob("iter-*.pkl")):
            continue
        if kind == "study" and not all(run.is_dir() and run.name.lstrip(".").startswith("run-")
                                       for run in (directory / "runs").iterdir()):
            continue
        return kind
    return None


def kind_of(directory: Path) -> str | None:
    """'run', 'train' or 'study' for a directory simcode wrote; None for anything else."""
    return marked_kind(directory) or _older_kind(directory)


def _first_of(names: list[str]) -> str:
    """"'a'", or "'a' and 2 more": the names a message shows."""
    return f"{names[0]!r}" + (f" and {len(names) - 1} more" if len(names) > 1 else "")


def _allowed(kind: str) -> str:
    return f"allowed: a new path, an empty directory, or a {kind} directory simcode wrote"


def _what_is(path: Path) -> str:
    """'a symbolic link', 'a directory', 'a file' or 'a special file (...)': what a message says is at `path`."""
    if path.is_symlink():
        return "a symbolic link"
    if path.is_dir():
        return "a directory"
    return "a file" if path.is_file() else "a special file (a device, a pipe or a socket)"


def check_parents(path: Path, key: str, probe: bool = True) -> None:
    """A path under a regular file can never be created, nor (`probe`) a new one whose nearest existing
    parent cannot hold new entries (read-only, or /proc): say which parent is in the way."""
    for parent in path.absolute().parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise BadInput(key, f"{path} cannot be created: {parent} is a file, not a directory; "
                                    "allowed: a path whose parents are directories")
            if probe and not os.path.lexists(path):
                _check_can_create_in(parent, path, key)
            return


def _check_can_create_in(parent: Path, path: Path, key: str, what: str = "created") -> None:
    """Whether `parent` can hold new entries, tried for real (a directory made and removed at once):
    permissions alone cannot tell, for root or on file systems such as /proc."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".simcode-probe.", dir=parent))
    except OSError as exc:
        raise BadInput(key, f"{path} cannot be {what}: {parent} cannot hold new files ({exc.strerror or exc}); "
                            "allowed: a path in a directory you can write") from None


def _check_can_write(path: Path, kind: str, key: str) -> None:
    """An existing directory simcode may write: a run is built beside it and put in its place, so its parent
    must hold new entries; a study writes into it."""
    if kind == "run":
        _check_can_create_in(path.absolute().parent, path, key, "replaced")
    else:
        _check_can_create_in(path, path, key, "written")


def check_own_files(directory: Path, names: Iterable[str], key: str = "--out", dirs: Iterable[str] = ()) -> None:
    """The entries simcode keeps in its `directory`: each of `names` is new or a regular file, each of `dirs`
    new or a directory (not a link). Anything else put in one's place (a directory or a link for a file, a
    file or a link for a directory, a device) is bad input, before anything is written."""
    wanted = [(name, "a file", Path.is_file) for name in names] + [(name, "a directory", Path.is_dir) for name in dirs]
    for name, kind, is_kind in wanted:
        path = Path(directory) / name
        if os.path.lexists(path) and (path.is_symlink() or not is_kind(path)):
            raise BadInput(key, f"{path} is {_what_is(path)}, where simcode keeps {kind} of its own; allowed: "
                                f"the {kind[2:]} simcode wrote there, so remove {path} or choose another {key}")


def claim_file(path: Path, key: str, written_by_simcode, theirs: str, allowed: str) -> Path:
    """The absolute path of a single file simcode may write (a profile, a GIF): its parents are
    directories, it is not a directory or a link, and it is new or `written_by_simcode(path)`;
    otherwise BadInput saying `theirs` ("is not ...") and what is `allowed`."""
    path = Path(path)
    check_parents(path, key)
    if path.is_symlink() or path.is_dir():
        raise BadInput(key, f"{path} is {_what_is(path)}; allowed: {allowed}")
    if os.path.lexists(path) and not written_by_simcode(path):
        raise BadInput(key, f"{path} {theirs}; allowed: {allowed}")
    return path.absolute()


def _check_no_user_files(path: Path, kind: str, entries: list[str], key: str) -> None:
    """A run replaces its whole directory: refuse one that also holds files simcode did not write there."""
    if kind != "run":
        return
    required, optional = _OLDER_LAYOUTS["run"]
    theirs = _strangers(entries, required | optional | {MARKER, LOCK})
    if theirs:
        raise BadInput(key, f"{path} is a simcode run directory that also holds {_first_of(theirs)}, which a run "
                            f"would delete; {_allowed(kind)} and nothing else, so move that file or choose another "
                            f"{key}")


def claim(path: Path, kind: str, key: str = "--out", probe: bool = True) -> str:
    """Check that simcode may write its `kind` directory at `path`, creating nothing (but, with `probe`, a
    probe of where it would write, removed at once: `check_parents`, `_check_can_write`).

    Returns 'new' (nothing there), 'empty' (an empty directory) or 'own' (a `kind` directory
    simcode wrote); raises BadInput for anything else."""
    path = Path(path)
    if str(path) == "":
        raise BadInput(key, f"an empty path; {_allowed(kind)}")
    check_parents(path, key, probe)
    here = Path.cwd().resolve()
    if kind == "run" and (path.resolve() == here or path.resolve() in here.parents):
        raise BadInput(key, f"{path} is the current directory or holds it, and a run replaces its "
                            "directory; allowed: a path outside the current directory")
    if not os.path.lexists(path):
        return "new"
    if not path.is_dir() or path.is_symlink():
        raise BadInput(key, f"{path} is {_what_is(path)}, not a simcode {kind} directory; {_allowed(kind)}")
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        if probe:
            _check_can_write(path, kind, key)
        return "empty"
    found = kind_of(path)
    if found == kind:
        _check_no_user_files(path, kind, entries, key)
        if probe:
            _check_can_write(path, kind, key)
        return "own"
    if found is not None:
        raise BadInput(key, f"{path} is a simcode {found} directory, not a {kind} directory; {_allowed(kind)}")
    raise BadInput(key, f"{path} is a directory simcode did not write (it holds {_first_of(entries)}); "
                        f"{_allowed(kind)}, so choose another {key} or empty it")


@contextlib.contextmanager
def exclusive(directory: Path, what: str, key: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on `directory` for the block; another simcode process holding it is
    bad input naming that process. The lock goes with the process, even when it is killed."""
    check_own_files(directory, [LOCK], key)
    fd = os.open(Path(directory) / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise BadInput(key, f"{directory} is in use by another simcode {what} (pid {holder}); "
                                f"allowed: wait for it to finish, or another {key}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
