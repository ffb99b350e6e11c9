"""The command line end to end: help that teaches, exit statuses, run directories."""

import json
import subprocess
import sys
from pathlib import Path

from simcode.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPREAD3 = str(ROOT / "scenarios" / "spread3.yaml")


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "train", "study", "codes", "evaluate", "bench"):
        assert command in out
    assert main(["codes", "--help"]) == 0
    assert "show" in capsys.readouterr().out


def test_run_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", SPREAD3, "--set", "run.workload=timing", "--set", "run.iterations=30",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [".simcode", "scenario.yaml", "summary.json", "trace.csv"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 30 and summary["scheme"] == "mds"
    assert "iteration  mean" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    cases = [
        ["run", SPREAD3, "--set", "code.name=nope"],
        ["run", SPREAD3, "--set", "cluster.n_learners=2"],           # N < M for mds
        ["run", SPREAD3, "--set", "delay.name=bimodal", "--set", "delay.p_slow=1.5", "--set", "delay.slowdown=1"],
        ["run", str(tmp_path / "missing.yaml")],
        ["run", SPREAD3, "--set", "delay.name=empirical", "--set", "delay.file=/no/such.csv"],
        ["codes", "show", "ldpc", "--agents", "5", "--learners", "3"],
        ["run", SPREAD3, "--threads", "100000", "--set", "run.workload=timing"],  # 1e5 torch threads: MemoryError
    ]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "simcode.cli", *args, "--out", str(out)] if args[0] == "run"
                              else [sys.executable, "-m", "simcode.cli", *args],
                              capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("simcode: "), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_usage_errors_are_one_line_exit_2(capsys):
    """Unknown options, out-of-range and mistyped values, missing arguments: no traceback."""
    cases = [
        ["run", SPREAD3, "--nope"],
        ["run", SPREAD3, "--threads", "-1"],
        ["bench", "updates", "--agents", "0"],
        ["study"],
        ["codes", "show", "mds", "--agents", "x", "--learners", "3"],
    ]
    for args in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("simcode: "), (args, err)


def test_codes_show_prints_load_tolerance_and_conditioning(capsys):
    assert main(["codes", "show", "mds", "--agents", "15", "--learners", "20"]) == 0
    out = capsys.readouterr().out
    assert "load per learner" in out and "tolerance: 5" in out and "condition number" in out


def test_a_simulated_run_can_be_evaluated(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", SPREAD3, "--out", str(out), "--no-progress", "--set", "run.iterations=3",
            "--set", "maddpg.batch_size=32", "--set", "maddpg.learning_starts=64", "--set", "maddpg.hidden=16"]
    assert main(args) == 0
    assert (out / "policy.npz").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 2 and report["iteration"] == 3 and report["mean_reward"] < 0
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2


def test_study_prints_its_headline_table(tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text(f"""base: {SPREAD3}
set: {{run: {{iterations: 20, workload: timing}}, maddpg.learning_starts: 0}}
axes: {{code.name: [mds, ldpc], delay.k: [0, 1]}}
plots: [{{kind: line, x: delay.k}}]
""")
    assert main(["study", str(study), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mean iteration time" in out and "| mds |" in out and "delay.k=1" in out
    assert (tmp_path / "out" / "report.md").is_file()


COMMANDS = [[], ["run"], ["train"], ["study"], ["codes"], ["codes", "show"], ["codes", "list"], ["evaluate"],
            ["bench"], ["bench", "updates"]]


def test_version_and_h_as_help_on_every_command(capsys):
    import simcode

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"simcode {simcode.__version__}"
    for command in COMMANDS:
        assert main([*command, "-h"]) == 0, command
        assert "Usage:" in capsys.readouterr().out, command


def test_train_help_gives_examples_of_keys_training_uses(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "code.name" not in text and "maddpg.lr" in text


def test_study_help_says_where_quick_writes(capsys):
    assert main(["study", "--help"]) == 0
    assert "runs/study-<name>-quick" in " ".join(capsys.readouterr().out.split())


def test_codes_list_and_show_know_centralized(capsys):
    assert main(["codes", "list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "centralized" in names and "mds" in names
    assert main(["codes", "show", "centralized"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "controller computes every" in out[0]


def test_one_straggler_is_singular(tmp_path, capsys):
    assert main(["codes", "show", "mds", "-M", "3", "-N", "4"]) == 0
    assert "tolerance: 1 straggler in the worst case" in capsys.readouterr().out
    assert main(["run", SPREAD3, "--set", "run.workload=timing", "--set", "run.iterations=2", "--set",
                 "cluster.n_learners=4", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 agents on 4 learners, tolerates 1 straggler\n" in out and str(tmp_path / "run") in out


def test_negative_evaluation_seed_is_a_usage_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--seed", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seed" in err[0]


def test_permanent_failures_with_a_timeout_do_not_advise_setting_it(tmp_path, capsys):
    args = ["run", SPREAD3, "--set", "run.workload=timing", "--set", "run.iterations=50", "--set", "delay.name=failure",
            "--set", "delay.p_fail=0.5", "--set", "delay.permanent=true", "--no-progress", "--out", str(tmp_path / "r")]
    assert main(args) == 1
    without = capsys.readouterr().err
    assert "cannot decode" in without and "set cluster.timeout" in without
    assert main([*args, "--set", "cluster.timeout=0.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot decode" in err[0]
    assert "set cluster.timeout" not in err[0] and "cluster.timeout (0.5 s) is set" in err[0]


def test_a_run_directory_holding_a_users_file_is_refused_and_kept(tmp_path, capsys):
    """A run replaces its whole directory: a file the user put in a marked run directory is not lost."""
    out = tmp_path / "run"
    args = ["run", SPREAD3, "--out", str(out), "--no-progress", "--set", "run.workload=timing",
            "--set", "run.iterations=2"]
    assert main(args) == 0
    (out / "notes.txt").write_text("mine\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simcode: --out: ") and "notes.txt" in err[0], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
