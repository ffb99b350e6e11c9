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
