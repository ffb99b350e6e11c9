"""Never lose a user's data: simcode replaces or writes into only what it made, creates files as
the umask says, reports filesystem errors and Ctrl-C in one line, and runs one study at a time
in a directory."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from simcode.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPREAD3 = str(ROOT / "scenarios" / "spread3.yaml")
KINDS = ["run", "train", "study"]
TIMING_RUN = ["--set", "run.workload=timing", "--set", "run.iterations=5"]
TINY_TRAINING = ["--set", "maddpg.batch_size=32", "--set", "maddpg.learning_starts=60", "--set", "maddpg.hidden=16",
                 "--set", "maddpg.steps_per_iteration=15", "--set", "run.checkpoint_every=1"]


def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(f"base: {SPREAD3}\nset: {{run: {{iterations: 5, workload: timing}}, maddpg.learning_starts: 0}}\n"
                    "axes: {delay.k: [0, 1, 2, 3]}\n")
    return path


def command(kind: str, tmp_path: Path, out, iterations: int = 2) -> list[str]:
    """The command that writes a `kind` directory at `out`: quick versions of run, train and study."""
    if kind == "run":
        return ["run", SPREAD3, *TIMING_RUN, "--no-progress", "--out", str(out)]
    if kind == "train":
        return ["train", SPREAD3, *TINY_TRAINING, "--set", f"run.iterations={iterations}", "--no-progress",
                "--out", str(out)]
    return ["study", str(study_file(tmp_path)), "--no-progress", "--out", str(out)]


def snapshot(root: Path) -> dict:
    """Every path under `root` with its content (None for a directory)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simcode: "), err
    return lines[0]


def refused(capsys, args: list[str]) -> str:
    """Run the command line; it must refuse with exit status 2 and one line. Returns the line."""
    assert main(args) == 2
    return one_line(capsys)


def refused_untouched(capsys, root: Path, args: list[str]) -> str:
    """`refused`, and nothing under `root` created, changed or deleted."""
    before = snapshot(root)
    line = refused(capsys, args)
    assert snapshot(root) == before
    return line


def marker(directory: Path) -> str:
    return json.loads((directory / ".simcode").read_text())["kind"]


# ---------------------------------------------------------------- 1. replace only what simcode made


@pytest.mark.parametrize("kind", KINDS)
def test_a_regular_file_at_out_is_refused_and_kept(tmp_path, capsys, kind):
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("chapter one")
    line = refused_untouched(capsys, tmp_path, command(kind, tmp_path, thesis))
    assert "thesis.tex is a file" in line and "allowed:" in line


@pytest.mark.parametrize("kind", KINDS)
def test_a_directory_simcode_did_not_write_is_refused_and_kept(tmp_path, capsys, kind):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ideas.md").write_text("keep me")
    line = refused_untouched(capsys, tmp_path, command(kind, tmp_path, notes))
    assert "simcode did not write" in line and "ideas.md" in line


@pytest.mark.parametrize("kind", KINDS)
def test_the_folder_of_all_runs_is_refused_and_every_run_kept(tmp_path, capsys, kind):
    runs = tmp_path / "runs"
    assert main(command("run", tmp_path, runs / "earlier")) == 0
    args = command(kind, tmp_path, runs)
    capsys.readouterr()
    refused_untouched(capsys, tmp_path, args)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_out_is_refused_and_the_current_directory_untouched(tmp_path, capsys, monkeypatch, kind):
    args = command(kind, tmp_path, "")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert "empty path" in refused(capsys, args)
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_path_under_a_regular_file_is_refused(tmp_path, capsys, kind):
    (tmp_path / "data.csv").write_text("1,2\n")
    args = command(kind, tmp_path, tmp_path / "data.csv" / "out")
    assert "data.csv is a file" in refused_untouched(capsys, tmp_path, args)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_directory_may_be_used_and_is_marked(tmp_path, capsys, kind):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(command(kind, tmp_path, out)) == 0
    assert marker(out) == kind


@pytest.mark.parametrize("kind, other", [("run", "train"), ("train", "study"), ("study", "run")])
def test_a_simcode_directory_of_another_kind_is_refused(tmp_path, capsys, kind, other):
    theirs = tmp_path / "theirs"
    assert main(command(other, tmp_path, theirs)) == 0
    capsys.readouterr()
    args = command(kind, tmp_path, theirs)
    assert f"simcode {other} directory, not a {kind} directory" in refused_untouched(capsys, tmp_path, args)


def test_a_run_replaces_its_own_run_and_a_studys_runs_are_marked(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(command("run", tmp_path, out)) == 0
    (out / "trace.csv").write_text("stale")
    assert main(command("run", tmp_path, out)) == 0
    assert (out / "trace.csv").read_text() != "stale" and marker(out) == "run"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    study = tmp_path / "study"
    assert main(command("study", tmp_path, study)) == 0
    assert marker(study) == "study"
    assert [marker(run) for run in (study / "runs").iterdir()] == ["run"] * 4


# What each kind of directory held before simcode marked its directories.
OLDER_LAYOUTS = {"run": {"scenario.yaml", "trace.csv", "summary.json", "policy.npz"},
                 "train": {"checkpoints", "scenario.yaml", "policy.npz", "curve.csv", "curve.png", "summary.json"},
                 "study": {"runs", "results.csv", "report.md", "plots"}}


@pytest.mark.parametrize("kind", KINDS)
def test_directories_of_an_older_simcode_are_accepted(tmp_path, capsys, kind):
    """No marker, but nothing in them that simcode does not write: a run is replaced, a study
    resumed, a training continued."""
    out = tmp_path / "older"
    assert main(command(kind, tmp_path, out)) == 0
    for path in [out, *out.glob("runs/*")]:  # as simcode wrote them before the marker
        for entry in path.iterdir():
            if entry.name not in OLDER_LAYOUTS[kind if path == out else "run"]:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    again = command(kind, tmp_path, out, iterations=3) + (["--resume"] if kind == "train" else [])
    assert main(again) == 0
    assert marker(out) == kind


def test_an_older_run_directory_holding_a_users_file_is_refused(tmp_path, capsys):
    out = tmp_path / "older"
    assert main(command("run", tmp_path, out)) == 0
    (out / ".simcode").unlink()
    (out / "my-notes.txt").write_text("keep me")
    capsys.readouterr()
    refused_untouched(capsys, tmp_path, command("run", tmp_path, out))


# ---------------------------------------------------------------- 2. the umask


@pytest.fixture
def umask():
    def set_umask(mask):
        os.umask(mask)
    previous = os.umask(0o022)
    os.umask(previous)
    yield set_umask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o027, 0o002])
def test_run_files_and_directories_follow_the_umask(tmp_path, capsys, umask, mask):
    umask(mask)
    out = tmp_path / "run"
    assert main(command("run", tmp_path, out)) == 0
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask
    for path in out.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path.name


def test_training_files_follow_the_umask(tmp_path, capsys, umask):
    umask(0o027)
    out = tmp_path / "train"
    assert main(command("train", tmp_path, out)) == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"policy.npz", "summary.json", "curve.csv", "iter-00000002.pkl"} <= {p.name for p in files}
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o640, path.name


# ---------------------------------------------------------------- 3. filesystem errors


def disk_full(path="/full/disk/file"):
    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    return fail


def test_a_full_disk_during_run_is_one_line_and_keeps_the_older_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(command("run", tmp_path, out)) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full())
    assert main(command("run", tmp_path, out)) == 1
    assert one_line(capsys) == "simcode: /full/disk/file: No space left on device"
    assert snapshot(tmp_path) == before  # the older run as it was, and no staging directory left


def test_a_full_disk_during_train_and_study_is_one_line(tmp_path, capsys, monkeypatch):
    from simcode.marl.trainer import Trainer
    from simcode.study.store import StudyStore

    monkeypatch.setattr(Trainer, "save", disk_full())
    assert main(command("train", tmp_path, tmp_path / "train")) == 1
    assert "No space left on device" in one_line(capsys)
    monkeypatch.setattr(StudyStore, "write_results", disk_full())
    assert main(command("study", tmp_path, tmp_path / "study")) == 1
    assert "No space left on device" in one_line(capsys)


def test_a_name_too_long_for_the_filesystem_is_one_line_exit_2(tmp_path, capsys):
    assert "File name too long" in refused_untouched(capsys, tmp_path, command("run", tmp_path, tmp_path / ("x" * 300)))


# ---------------------------------------------------------------- 4. one study at a time


def study_with_a_long_run(tmp_path: Path, *options: str) -> tuple[subprocess.Popen, Path, Path]:
    """A study in its own process group whose first run ends at once and whose second takes
    minutes; returned (process, study file, out) once the first run is saved."""
    path = tmp_path / "study.yaml"
    path.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing, maddpg.learning_starts: 0}}\n"
                    "axes: {run.iterations: [5, 200000]}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "simcode.cli", "study", str(path), "--out", str(out), "--no-progress", *options]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list((out / "runs").glob("run-*")):
        time.sleep(0.05)
    return proc, path, out


def test_a_second_study_on_the_same_out_is_refused_naming_the_first(tmp_path, capsys):
    first, path, out = study_with_a_long_run(tmp_path)
    try:
        assert first.poll() is None, "the first study should still be running"
        line = refused(capsys, ["study", str(path), "--out", str(out), "--no-progress"])
        assert f"in use by another simcode study (pid {first.pid})" in line
        os.killpg(first.pid, signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130 and "1 of 2 runs are saved" in err  # the first went on undisturbed


# ---------------------------------------------------------------- 5. train leftovers


def test_a_new_training_into_a_training_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "train"
    assert main(command("train", tmp_path, out)) == 0
    capsys.readouterr()
    line = refused_untouched(capsys, tmp_path, command("train", tmp_path, out))
    assert "holds a training" in line and "--resume" in line


def test_resume_where_there_is_no_training_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    assert main(command("run", tmp_path, run)) == 0
    capsys.readouterr()
    for out in (tmp_path / "new", empty, run):
        refused_untouched(capsys, tmp_path, command("train", tmp_path, out) + ["--resume"])


def test_train_removes_the_temporaries_a_killed_training_left(tmp_path, capsys):
    out = tmp_path / "train"
    assert main(command("train", tmp_path, out)) == 0
    # What atomic.replacing leaves when the process dies mid-write.
    leftovers = [Path(tempfile.mkstemp(prefix=".iter-00000003.", suffix=".pkl", dir=out / "checkpoints")[1]),
                 Path(tempfile.mkstemp(prefix=".curve.", suffix=".csv", dir=out)[1])]
    assert main(command("train", tmp_path, out, iterations=3) + ["--resume"]) == 0
    assert not any(p.exists() for p in leftovers)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter-00000002.pkl", "iter-00000003.pkl"]


# ---------------------------------------------------------------- 6. Ctrl-C


def test_ctrl_c_during_run_says_nothing_was_written(tmp_path, capsys, monkeypatch):
    import simcode.sim.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simcode.sim.runner, "simulate", interrupted)
    assert main(command("run", tmp_path, tmp_path / "run")) == 130
    assert "interrupted: nothing written" in one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_train_names_the_kept_checkpoint_and_resume_continues(tmp_path, capsys, monkeypatch):
    from simcode.marl.trainer import Trainer

    step = Trainer.step

    def step_until_3(self):
        if self.iteration == 3:
            raise KeyboardInterrupt
        return step(self)

    out = tmp_path / "train"
    monkeypatch.setattr(Trainer, "step", step_until_3)
    assert main(command("train", tmp_path, out, iterations=5)) == 130
    line = one_line(capsys)
    assert "checkpoint of iteration 3 is kept" in line and "--resume" in line
    monkeypatch.setattr(Trainer, "step", step)
    assert main(command("train", tmp_path, out, iterations=5) + ["--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["iterations"] == 5


def test_ctrl_c_on_a_study_with_workers_is_one_line_without_tracebacks(tmp_path):
    """The terminal sends SIGINT to the whole process group: here to one worker at work and one
    idle (its short run is saved, nothing is left for it to do)."""
    proc, _, _ = study_with_a_long_run(tmp_path, "--jobs", "2")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "1 of 2 runs are saved in" in lines[0], err


# ---------------------------------------------------------------- evaluate --render


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy") / "run"
    args = ["run", SPREAD3, "--out", str(out), "--no-progress", "--set", "run.iterations=2",
            "--set", "maddpg.batch_size=32", "--set", "maddpg.learning_starts=32", "--set", "maddpg.hidden=16"]
    assert main(args) == 0
    return out


def render(run: Path, path) -> list[str]:
    return ["evaluate", str(run), "--episodes", "1", "--render", str(path)]


def test_render_refuses_what_it_cannot_or_must_not_write(tmp_path, capsys, policy_run):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "frames").mkdir()
    (tmp_path / "figure.gif").write_text("the user's figure, not a GIF simcode rendered")
    cases = {tmp_path / "a-file" / "episode.gif": "a-file is a file",
             tmp_path / "frames": "is a directory",
             tmp_path / "episode.mp4": "allowed suffixes: .gif",
             tmp_path / "figure.gif": "not a GIF simcode rendered",
             "": "empty path"}
    for path, message in cases.items():
        assert message in refused_untouched(capsys, tmp_path, render(policy_run, path))


def test_render_prints_the_absolute_path_and_replaces_its_own_gif(tmp_path, capsys, monkeypatch, policy_run):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(render(policy_run, "episode.gif")) == 0
        assert json.loads(capsys.readouterr().out)["render"] == str(tmp_path / "episode.gif")
    assert (tmp_path / "episode.gif").read_bytes()[:3] == b"GIF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode.gif"]


def test_a_full_disk_while_rendering_is_one_line_and_leaves_no_file(tmp_path, capsys, monkeypatch, policy_run):
    import imageio.v2 as imageio

    monkeypatch.setattr(imageio, "mimsave", disk_full())
    assert main(render(policy_run, tmp_path / "episode.gif")) == 1
    assert one_line(capsys) == "simcode: /full/disk/file: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_staging_directory_is_removed_by_the_next_run_and_nothing_else(tmp_path, capsys):
    """kill -9 leaves `.NAME.simcode-PID.XXXX`; the next run into NAME removes it once PID is gone,
    and leaves a live process's staging directory and a user's look-alike directory alone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run-a"
    leftover = tmp_path / f".run-a.simcode-{dead.pid}.abcd"
    live = tmp_path / f".run-a.simcode-{os.getpid()}.efgh"
    users = tmp_path / ".run-a.notes"
    for directory in (leftover, live, users):
        directory.mkdir()
        (directory / "trace.csv").write_text("x\n")
    assert main(command("run", tmp_path, out)) == 0
    assert not leftover.exists()
    assert (live / "trace.csv").exists() and (users / "trace.csv").exists()
    assert (out / "trace.csv").exists()
