"""Bad input of every kind is one line on stderr naming the file and key, exit status 2, nothing written.

Saved policies and checkpoints that are garbage, truncated or of the wrong shapes; sizes that cannot
fit in memory (checked from shapes before anything is allocated); study files whose exclude, plot
or axis keys name nothing; and what the commands say about where they wrote.
"""

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from simcode.cli import main
from simcode.config import EnvConfig, MaddpgConfig
from simcode.errors import BadInput
from simcode.study.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
SPREAD3 = str(ROOT / "scenarios" / "spread3.yaml")
TINY = ["--set", "run.iterations=2", "--set", "maddpg.batch_size=32", "--set", "maddpg.learning_starts=64",
        "--set", "maddpg.hidden=16", "--no-progress"]


def one_line_exit_2(capsys, args: list[str], *words: str) -> str:
    """Run the CLI; assert exit 2 and a single `simcode: ...` line on stderr holding `words`."""
    capsys.readouterr()
    assert main(args) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simcode: "), err
    for word in words:
        assert word in err[0], (word, err[0])
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny centralized training: policy.npz and checkpoints/iter-*.pkl."""
    out = tmp_path_factory.mktemp("trained") / "train"
    assert main(["train", SPREAD3, "--out", str(out), *TINY]) == 0
    return out


def copy_of(trained: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(trained, target)
    return target


# --------------------------------------------------------------------------- saved policies and checkpoints

def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a zip file at all\n" * 10)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _pickled(path: Path) -> None:
    path.write_bytes(pickle.dumps({"scenario": "spread3", "state_0": [1, 2, 3]}))


def _wrong_shapes(path: Path) -> None:
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["state_1"] = arrays["state_1"][:-7]
    np.savez(path, **arrays)


@pytest.mark.parametrize("spoil", [_garbage, _truncated, _pickled, _wrong_shapes], ids=lambda f: f.__name__[1:])
def test_a_spoiled_policy_is_one_line_naming_the_file(trained, tmp_path, capsys, spoil):
    run_dir = copy_of(trained, tmp_path)
    policy = run_dir / "policy.npz"
    spoil(policy)
    one_line_exit_2(capsys, ["evaluate", str(run_dir), "--episodes", "1"], str(policy))


def test_a_truncated_checkpoint_is_one_line_in_evaluate_and_resume(trained, tmp_path, capsys):
    run_dir = copy_of(trained, tmp_path)
    (run_dir / "policy.npz").unlink()  # evaluate falls back to the newest checkpoint
    newest = sorted((run_dir / "checkpoints").glob("iter-*.pkl"))[-1]
    _truncated(newest)
    one_line_exit_2(capsys, ["evaluate", str(run_dir), "--episodes", "1"], str(newest), "truncated or corrupt")
    before = sorted(p.name for p in run_dir.rglob("*"))
    one_line_exit_2(capsys, ["train", SPREAD3, "--resume", "--out", str(run_dir), *TINY], str(newest))
    assert sorted(p.name for p in run_dir.rglob("*")) == before


def test_a_checkpoint_that_is_a_directory_is_one_line_in_resume(trained, tmp_path, capsys):
    run_dir = copy_of(trained, tmp_path)
    newest = sorted((run_dir / "checkpoints").glob("iter-*.pkl"))[-1]
    newest.unlink()
    newest.mkdir()
    one_line_exit_2(capsys, ["train", SPREAD3, "--resume", "--out", str(run_dir), *TINY], str(newest))


@pytest.mark.parametrize("command", ["run", "study"])
def test_an_own_output_where_nothing_can_be_written_is_one_line_and_stays(tmp_path, capsys, monkeypatch, command):
    """A run is rebuilt beside its directory and put in its place, a study writes into its own: where that
    directory cannot take new entries (a read-only mount, an immutable directory: here the probe is refused
    as such a file system refuses it), the second command is one line, exit 2, before any run, and the
    first one's files stay."""
    import errno
    import tempfile

    from simcode import outputs

    study = tmp_path / "s.yaml"
    study.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing, run.iterations: 2}}\naxes: {{delay.k: [0]}}\n")
    source, out = (SPREAD3, tmp_path / "parent" / "out") if command == "run" else (str(study), tmp_path / "out")
    assert main([command, source, "--out", str(out), *TIMING[-1:]]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".simcode.lock"}
    locked = out.parent if command == "run" else out
    real_mkdtemp = tempfile.mkdtemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == locked:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "mkdtemp", refuse)
    what = "replaced" if command == "run" else "written"
    one_line_exit_2(capsys, [command, source, "--out", str(out), *TIMING[-1:]], "--out", f"cannot be {what}",
                    "Read-only file system", "allowed: a path in a directory you can write")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".simcode.lock"} == before


@pytest.mark.parametrize("body", [b"\x8d\xff garbage", b"[1]\n", b'{"host_seconds": "abc"}\n'])
def test_a_spoiled_training_summary_is_one_line_in_resume(trained, tmp_path, capsys, body):
    run_dir = copy_of(trained, tmp_path)
    summary = run_dir / "summary.json"
    summary.write_bytes(body)
    before = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".simcode.lock"}
    one_line_exit_2(capsys, ["train", SPREAD3, "--resume", "--out", str(run_dir), *TINY], str(summary))
    assert {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".simcode.lock"} == before


def test_a_checkpoints_folder_that_is_a_file_is_one_line_in_train(trained, tmp_path, capsys):
    run_dir = copy_of(trained, tmp_path)
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "checkpoints").write_text("mine\n")
    for resume in ([], ["--resume"]):
        one_line_exit_2(capsys, ["train", SPREAD3, *resume, "--out", str(run_dir), *TINY], "checkpoints")
    assert (run_dir / "checkpoints").read_text() == "mine\n"


def test_evaluate_a_file_says_it_is_not_a_run_directory(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    one_line_exit_2(capsys, ["evaluate", str(notes)], "is a file, not a run directory")


def test_train_and_evaluate_say_where_they_wrote(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", SPREAD3, "--out", "relative", *TINY]) == 0
    captured = capsys.readouterr()
    assert f"training written to {(tmp_path / 'relative').resolve()}" in captured.err
    json.loads(captured.out)  # stdout stays pure JSON
    assert main(["evaluate", str(trained), "--episodes", "1", "--render", "episode.gif"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    gif = (tmp_path / "episode.gif").resolve()
    assert report["render"] == str(gif) and gif.is_file()
    assert f"evaluated the policy in {trained.resolve()}" in captured.err
    assert f"episode written to {gif}" in captured.err


# --------------------------------------------------------------------------- memory estimated from shapes

@pytest.mark.parametrize("env", [
    EnvConfig(scenario="simple_spread", n_agents=1), EnvConfig(scenario="simple_spread", n_agents=4),
    EnvConfig(scenario="simple_adversary", n_agents=1), EnvConfig(scenario="simple_adversary", n_agents=3),
    EnvConfig(scenario="simple_tag", n_adversaries=1, n_good=1, n_obstacles=0),
    EnvConfig(scenario="simple_tag", n_adversaries=2, n_good=3, n_obstacles=1),
    EnvConfig(scenario="simple_push"), EnvConfig(scenario="simple"), EnvConfig(scenario="simple_reference"),
    EnvConfig(scenario="simple_speaker_listener"), EnvConfig(scenario="simple_crypto"),
    EnvConfig(scenario="simple_world_comm", n_adversaries=1, n_good=1, n_obstacles=0, n_food=1, n_forests=0),
    EnvConfig(scenario="simple_world_comm", n_adversaries=4, n_good=2, n_obstacles=1, n_food=2, n_forests=2),
], ids=lambda e: f"{e.scenario}")
def test_estimated_sizes_are_the_environments_real_sizes(env):
    from simcode import memory
    from simcode.marl.envs import describe
    from simcode.mpe_scenarios import MPE_SCENARIOS

    assert set(memory.OBSERVATIONS) == set(MPE_SCENARIOS)  # a new scenario needs its sizes here too

    real = describe(env, MaddpgConfig(hidden=8))
    groups = memory.observation_groups(env)
    assert [size for size, _, count in groups for _ in range(count)] == list(real.obs_dims)
    assert [act for _, act, count in groups for _ in range(count)] == list(real.act_dims)
    estimated = [size for size, count in memory.agent_state_floats(groups, 8) for _ in range(count)]
    assert estimated == list(real.state_sizes)  # every critic sees everything under maddpg


def test_check_fits_says_what_is_needed_against_what_the_machine_has():
    from simcode import memory

    parts = [("maddpg.buffer_size", "the replay buffer", 3 * memory.GIB), ("env", "the states", memory.GIB)]
    memory.check_fits(parts, "this run", available=4 * memory.GIB)  # exactly fits
    with pytest.raises(BadInput) as info:
        memory.check_fits(parts, "this run", "s.yaml", available=2 * memory.GIB)
    assert info.value.key == "maddpg.buffer_size" and info.value.file == "s.yaml"
    assert "needs ~4 GiB" in info.value.message and "this machine has 2 GiB" in info.value.message
    assert "mostly the replay buffer" in info.value.message
    assert memory.total_memory_bytes() > 2**26


@pytest.mark.parametrize("args, key", [
    (["run", SPREAD3, "--set", "env.n_agents=100000", "--set", "code.name=centralized"], "env.n_agents"),
    (["train", SPREAD3, "--set", "env.n_agents=100000", "--set", "code.name=centralized"], "env.n_agents"),
    (["run", SPREAD3, "--set", "env.n_agents=100000", "--set", "cluster.n_learners=100000",
      "--set", "run.workload=timing"], "env.n_agents"),
    (["codes", "show", "mds", "-M", "100000", "-N", "100001"], "--agents"),
    (["bench", "updates", "--agents", "1000000"], "--agents"),
    (["bench", "updates", "--agents", "2", "--batch", "1000000000000"], "--batch"),
])
def test_sizes_beyond_memory_are_refused_before_allocating(tmp_path, capsys, args, key):
    out = ["--out", str(tmp_path / "out")] if args[0] in ("run", "train") else []
    line = one_line_exit_2(capsys, args + out, key, "GiB of memory", "this machine has")
    assert not (tmp_path / "out").exists(), line


def test_train_checks_its_own_footprint_whatever_the_workload(tmp_path, capsys):
    """train always trains: a timing scenario's buffer still has to fit."""
    args = ["train", SPREAD3, "--set", "run.workload=timing", "--set", "env.n_agents=300",
            "--set", "code.name=centralized", "--out", str(tmp_path / "out")]
    one_line_exit_2(capsys, args, "this training of 300 agents")


# --------------------------------------------------------------------------- study files

def study_error(tmp_path: Path, body: str) -> BadInput:
    """The BadInput of loading a timing study over spread3 with `body` (it must name the file)."""
    path = tmp_path / "s.yaml"
    path.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing}}\n" + body)
    with pytest.raises(BadInput) as info:
        load_study(str(path))
    assert info.value.file == str(path)
    return info.value


@pytest.mark.parametrize("body, key", [
    ("axes: {delay.k: [0, 1]}\nexclude: [{code.name: mds}]\n", "exclude[0].code.name"),
    ("axes: {delay.k: [0, 1]}\nexclude: [{delay.k: 7}]\n", "exclude[0]"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.kk}]\n", "plots[0].x"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, y: mean_iteratoin}]\n", "plots[0].y"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, hue: scheme_name}]\n", "plots[0].hue"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, where: {delay.kk: 1}}]\n", "plots[0].where.delay.kk"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, colour: red}]\n", "plots[0].colour"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line}]\n", "plots[0].x"),
    ("axes: {sed: [0, 1]}\n", "axes.sed"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, file: ../../escape.png}]\n", "plots[0].file"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, file: /tmp/users_own.png}]\n", "plots[0].file"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, file: notes.txt}]\n", "plots[0].file"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, file: a.png}, {kind: bar, x: delay.k, file: a.png}]\n",
     "plots[1].file"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k}, {kind: bar, x: delay.k, file: 00-line.png}]\n",
     "plots[1].file"),
    ("name: ../../elsewhere\naxes: {delay.k: [0, 1]}\n", "name"),
    ("axes: {delay.k: [0, 1]}\nplots: [{kind: line, x: delay.k, where: {delay.k: [0, 1]}}]\n",
     "plots[0].where.delay.k"),
    ("name: [1, 2]\naxes: {delay.k: [0, 1]}\n", "name"),
])
def test_study_keys_that_name_nothing_are_refused(tmp_path, body, key):
    assert study_error(tmp_path, body).key == key


def test_plot_columns_known_to_the_study_are_a_runs_summary_keys():
    from simcode.config import load_scenario
    from simcode.sim.runner import simulate
    from simcode.study.spec import SUMMARY_KEYS

    summary = simulate(load_scenario(SPREAD3, {"run.workload": "timing", "run.iterations": 2})).summary
    assert set(SUMMARY_KEYS) == set(summary)


def test_a_typo_in_an_axis_or_set_key_is_an_unknown_scenario_key(tmp_path):
    error = study_error(tmp_path, "axes: {delay.kk: [1, 2]}\n")
    assert error.key == "delay.kk"
    assert "unknown key in delay; allowed: name, mode, k, delay" in error.message
    assert "exclude" not in error.message
    path = tmp_path / "typo.yaml"
    path.write_text(f"base: {SPREAD3}\nset: {{run: {{workload: timing, iterationz: 5}}}}\naxes: {{delay.k: [0, 1]}}\n")
    with pytest.raises(BadInput) as info:
        load_study(str(path))
    assert info.value.key == "set.run.iterationz" and "exclude" not in info.value.message
    assert study_error(tmp_path, "quick: {maddpg.lrr: 0.1}\naxes: {delay.k: [0, 1]}\n").key == "quick.maddpg.lrr"
    # A key valid for some runs only (one scheme's parameter) still advises `exclude`.
    assert "exclude" in study_error(tmp_path, "axes: {code.name: [mds, random_sparse], code.p: [0.5]}\n").message


@pytest.mark.parametrize("name, body", [("summary.json", b"\x86\xff garbage"), ("summary.json", b"[1, 2]\n"),
                                        ("trace.csv", b"\xe5\xff garbage"), ("trace.csv", b"")])
def test_a_spoiled_file_of_a_finished_study_run_is_one_line(tmp_path, capsys, name, body):
    study = tmp_path / "s.yaml"
    study.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing, run.iterations: 2}}\n"
                     "axes: {code.name: [mds, ldpc], delay.k: [0, 1]}\nplots: [{kind: distribution, x: delay.k}]\n")
    out = tmp_path / "out"
    assert main(["study", str(study), "--out", str(out), "--no-progress"]) == 0
    spoiled = sorted((out / "runs").glob("run-*"))[0] / name
    spoiled.write_bytes(body)
    capsys.readouterr()
    assert main(["study", str(study), "--out", str(out), "--no-progress"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the 'resuming: ...' note
    assert last.startswith(f"simcode: {spoiled}: not a run ") and "Traceback" not in last
    assert spoiled.read_bytes() == body


def test_yaml_nested_too_deeply_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("seed: " + "[" * 5000 + "]" * 5000 + "\n")
    one_line_exit_2(capsys, ["run", str(deep), "--out", str(tmp_path / "out")], str(deep), "nested too deeply")
    one_line_exit_2(capsys, ["run", SPREAD3, "--set", "seed=" + "[" * 5000 + "]" * 5000, "--out",
                             str(tmp_path / "out")], "seed")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- names from any directory

def test_shipped_studies_and_scenarios_resolve_from_any_directory(tmp_path, monkeypatch):
    from simcode.config import load_scenario

    monkeypatch.chdir(tmp_path)
    assert load_study("straggler_sweep", quick=True).path.parent.name == "studies"
    assert load_scenario("scenarios/spread3.yaml").n_agents == 3
    assert load_scenario("spread5").n_agents == 5
    (tmp_path / "studies").mkdir()  # the user's own study of the same name comes first
    (tmp_path / "studies" / "straggler_sweep.yaml").write_text(
        f"base: {SPREAD3}\nset: {{run.workload: timing}}\naxes: {{seed: [0, 1]}}\n")
    assert len(load_study("straggler_sweep").runs) == 2
    with pytest.raises(BadInput, match="straggler_sweep"):  # the allowed names are listed
        load_study("no_such_study")
    with pytest.raises(BadInput, match="spread3"):
        load_scenario("scenarios/no_such.yaml")


def test_a_copied_shipped_study_finds_its_base_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "studies" / "time_to_reward.yaml", tmp_path / "mine.yaml")  # base: ../scenarios/...
    assert load_study("mine.yaml", quick=True).runs[0].scenario.n_agents == 3


def test_a_binary_study_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_bytes(bytes(range(256)))
    one_line_exit_2(capsys, ["study", str(path), "--out", str(tmp_path / "out")], str(path), "not a text file")
    assert not (tmp_path / "out").exists()


def test_the_shipped_files_are_package_data():
    import tomllib

    import simcode

    data = Path(simcode.__file__).parent / "data"
    assert (data / "studies" / "straggler_sweep.yaml").is_file() and (data / "scenarios" / "spread3.yaml").is_file()
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["simcode"]
    assert "data/scenarios/*.yaml" in globs and "data/studies/*.yaml" in globs


def test_make_sweep_writes_where_the_quick_study_writes_by_default():
    from simcode.study.runner import default_out

    sweep = [line for line in (ROOT / "Makefile").read_text().splitlines() if "study straggler_sweep" in line][0]
    out = sweep.split("--out", 1)[1].split()[0] if "--out" in sweep else None
    assert out in (None, str(default_out(load_study("straggler_sweep", quick=True))))



def test_a_stale_run_counts_the_states_it_keeps_for_late_results():
    """stale keeps the states of the last max_staleness + 1 iterations: the memory check counts them."""
    from simcode import memory
    from simcode.config import load_scenario, parse_set

    def kept_bytes(*overrides: str) -> list[int]:
        scenario = load_scenario(SPREAD3, parse_set(list(overrides)))
        parts = memory.simulation_parts(scenario, real=True)
        return [n for key, what, n in parts if key.endswith("cluster.max_staleness")]

    stale = ["cluster.strategy=stale", "cluster.deadline=0.05", "cluster.on_decode=let_finish"]
    assert kept_bytes() == []  # exact keeps nothing
    one, eight = kept_bytes(*stale), kept_bytes(*stale, "cluster.max_staleness=8")
    assert len(one) == 1 and eight[0] == one[0] * 9 // 2  # (8 + 1) against (1 + 1) iterations


def test_a_scenario_that_is_not_a_regular_file_says_so(tmp_path, capsys):
    """/dev/null exists: 'file not found' would send the user looking for a typo."""
    one_line_exit_2(capsys, ["run", "/dev/null", "--out", str(tmp_path / "r")], "/dev/null",
                    "not a regular file", "allowed: a YAML file")
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- empty files, outputs in the way

TIMING = ["--set", "run.workload=timing", "--set", "run.iterations=2", "--no-progress"]


def test_a_scenario_after_a_byte_order_mark_loads(tmp_path):
    from simcode.config import load_scenario

    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + Path(SPREAD3).read_bytes().replace(b"seed:", b"seed: 7 #", 1))
    assert load_scenario(path).seed == 7


@pytest.mark.parametrize("name", ["results.csv", ".simcode.lock"])
def test_a_directory_in_place_of_a_study_file_is_one_line(tmp_path, capsys, name):
    study = tmp_path / "s.yaml"
    study.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing, run.iterations: 2}}\naxes: {{delay.k: [0]}}\n")
    out = tmp_path / "out"
    assert main(["study", str(study), "--out", str(out), "--no-progress"]) == 0
    (out / name).unlink()
    (out / name / "mine").mkdir(parents=True)
    before = sorted(str(p) for p in out.rglob("*"))
    one_line_exit_2(capsys, ["study", str(study), "--out", str(out), "--no-progress"], "--out", str(out / name),
                    "is a directory", "allowed: the file simcode wrote")
    assert sorted(str(p) for p in out.rglob("*")) == before


@pytest.mark.parametrize("name,put", [("runs", "file"), ("plots", "file"), ("plots", "link")])
def test_a_file_or_link_in_place_of_a_study_directory_is_one_line(tmp_path, capsys, name, put):
    """A study writes into runs/ and plots/: a user's file there would be replaced, a link followed into
    their own directory. Refused before any run, and nothing in the study changes."""
    study = tmp_path / "s.yaml"
    study.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing, run.iterations: 2}}\naxes: {{delay.k: [0]}}\n")
    out = tmp_path / "out"
    assert main(["study", str(study), "--out", str(out), "--no-progress"]) == 0
    shutil.rmtree(out / name, ignore_errors=True)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    if put == "file":
        (out / name).write_text("mine\n")
    else:
        (out / name).symlink_to(theirs, target_is_directory=True)
    before = sorted(str(p) for p in out.rglob("*"))
    one_line_exit_2(capsys, ["study", str(study), "--out", str(out), "--no-progress"], "--out", str(out / name),
                    "where simcode keeps a directory of its own", "allowed: the directory simcode wrote")
    assert sorted(str(p) for p in out.rglob("*")) == before and not any(theirs.iterdir())


def test_a_study_without_plots_does_not_announce_them(tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing, run.iterations: 2}}\naxes: {{delay.k: [0]}}\n"
                     "plots: []\n")
    assert main(["study", str(study), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said.endswith("report.md, results.csv"), said


@pytest.mark.parametrize("command", ["run", "study"])
def test_an_out_where_nothing_can_be_created_is_one_line(tmp_path, capsys, command):
    study = tmp_path / "s.yaml"
    study.write_text(f"base: {SPREAD3}\nset: {{run.workload: timing, run.iterations: 2}}\naxes: {{delay.k: [0]}}\n")
    source = SPREAD3 if command == "run" else str(study)
    for out in ("/proc/simcode-out", "/proc/simcode-out/deeper"):
        one_line_exit_2(capsys, [command, source, "--out", out, *TIMING[-1:]], "--out", out,
                        "/proc cannot hold new files", "allowed: a path in a directory you can write")


@pytest.mark.parametrize("body", [b"\x8d\xff garbage", b"a: 1\na: 2\n", b"[1, 2]\n", b"update: 3\n", b"",
                                  b"update: {intercept: abc, per_gflop: 1}\n"])
def test_a_garbage_profile_says_what_is_allowed_once(tmp_path, body):
    from simcode.sim.profile import load_profile

    path = tmp_path / "profile.yaml"
    path.write_bytes(body)
    with pytest.raises(BadInput) as info:
        load_profile(path)
    assert info.value.key == "cost.profile" and str(path) in info.value.message
    assert info.value.message.count("allowed:") == 1, info.value.message
    assert info.value.message.endswith("allowed: a file written by `simcode calibrate`")
