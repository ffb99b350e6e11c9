"""`simcode train`: centralized MADDPG with no simulator; learning curve, checkpoints, resume.

A run directory holds scenario.yaml, checkpoints/iter-NNNNNNNN.pkl (everything needed to continue
bit-identically), policy.npz (the agents' states, as `evaluate` reads them), curve.csv, curve.png
and summary.json, with simcode's marker and lock (simcode.outputs).
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import numpy as np

from simcode import atomic, outputs
from simcode.config import Scenario
from simcode.errors import BadInput, Interrupted
from simcode.figures import save_figure
from simcode.marl.evaluate import save_policy
from simcode.marl.trainer import Trainer
from simcode.progress import progress_bar


# What a training directory holds besides checkpoints/ (and simcode's marker and lock).
OUTPUT_FILES = ("scenario.yaml", "policy.npz", "curve.csv", "curve.png", "summary.json")


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "checkpoints").glob("iter-*.pkl"))


def write_curve(trainer: Trainer, out_dir: Path) -> None:
    names = trainer.agent_names
    with atomic.replacing(out_dir / "curve.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "env_step", "iteration", "reward"] + [f"reward_{n}" for n in names])
        for e in trainer.episode_log:
            writer.writerow([e["episode"], e["env_step"], e["iteration"], f"{e['reward']:.6g}"]
                            + [f"{r:.6g}" for r in e["rewards"]])
    if not trainer.episode_log:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([e["env_step"] for e in trainer.episode_log])
    rewards = np.array([e["reward"] for e in trainer.episode_log])
    window = max(1, min(1000, len(rewards) // 20))
    rolling = np.convolve(rewards, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, rewards, lw=0.5, alpha=0.3, label="episode")
    ax.plot(steps[window - 1:], rolling, lw=1.5, label=f"rolling mean ({window} episodes)")
    ax.axvline(trainer.scenario.learning_starts, color="grey", ls=":", lw=1, label="learning starts")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode reward (sum over agents)")
    ax.set_title(f"MADDPG on {trainer.scenario.env.scenario}, {trainer.n_agents} agents")
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, out_dir / "curve.png", dpi=100)
    plt.close(fig)


def summarize(trainer: Trainer, host_seconds: float) -> dict:
    last = [e["reward"] for e in trainer.episode_log[-100:]]
    return {"iterations": trainer.iteration, "env_steps": trainer.env_steps, "episodes": trainer.episodes,
            "mean_reward_last_100": float(np.mean(last)) if last else None,
            "episodes_in_mean": len(last), "host_seconds": round(host_seconds, 3)}


def save_checkpoint(trainer: Trainer, out_dir: Path, keep: int = 2) -> Path:
    folder = out_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"iter-{trainer.iteration:08d}.pkl"
    trainer.save(path)
    for old in checkpoints(out_dir)[:-keep]:
        old.unlink()
    return path


def _iteration_of(checkpoint: Path) -> int:
    return int(checkpoint.stem.split("-")[1])


def _checked_start(scenario: Scenario, out_dir: Path, resume: bool) -> tuple[Trainer | None, float]:
    """The trainer to continue (None: start a new one) and the host seconds already spent, after
    checking that `out_dir` holds a training exactly when `resume` asks for one."""
    folder = out_dir / "checkpoints"
    if (folder.exists() and not folder.is_dir()) or folder.is_symlink():
        raise BadInput("--out", f"{folder} is not a directory simcode train wrote; allowed: a training directory "
                                "whose checkpoints/ is simcode's, or another --out")
    found = checkpoints(out_dir)
    if not resume:
        if found:
            raise BadInput("--out", f"{out_dir} holds a training (checkpoint of iteration "
                           f"{_iteration_of(found[-1])}); allowed: --resume to continue it, or another --out")
        return None, 0.0
    if not found:
        raise BadInput("--resume", f"{out_dir} holds no training to continue (no checkpoint); allowed: a "
                       "directory where simcode train saved a checkpoint, or no --resume to start a training")
    trainer = Trainer.load(found[-1])
    keys = ("seed", "env", "maddpg")  # what the trajectory depends on; run.iterations may grow
    if any(trainer.scenario.to_dict()[k] != scenario.to_dict()[k] for k in keys):
        raise BadInput("--resume", f"{out_dir} was trained with a different seed, env or maddpg "
                       "section; allowed: the same ones (run.iterations may change)")
    trainer.scenario = scenario
    return trainer, _previous_host_seconds(out_dir / "summary.json")


def _previous_host_seconds(path: Path) -> float:
    """The host seconds the summary of an earlier session counts (0 without one), or BadInput naming it."""
    if not path.is_file():
        return 0.0
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        data = None
    seconds = data.get("host_seconds", 0.0) if isinstance(data, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise BadInput("host_seconds", "not the summary simcode train wrote; allowed: its summary.json, or remove "
                                       "the file to count host seconds from this session only", str(path))
    return float(seconds)


def _interrupted(trainer: Trainer, out_dir: Path) -> Interrupted:
    """What a Ctrl-C keeps: the newest checkpoint, if there is one yet."""
    kept = checkpoints(out_dir)
    if kept:
        return Interrupted(f"interrupted at iteration {trainer.iteration}: the checkpoint of iteration "
                           f"{_iteration_of(kept[-1])} is kept in {out_dir}; run the same command with "
                           "--resume to continue from it")
    return Interrupted(f"interrupted at iteration {trainer.iteration}, before the first checkpoint: nothing "
                       f"to resume in {out_dir}; run the same command to start again (run.checkpoint_every "
                       "sets how often checkpoints are saved)")


def _train_in(out_dir: Path, trainer: Trainer, warm: bool, progress: bool) -> None:
    """Warm up (unless `warm`), then train up to scenario.run.iterations, checkpointing as asked."""
    total = trainer.scenario.run.iterations
    every = trainer.scenario.run.checkpoint_every
    with progress_bar(total, "train", enabled=progress, completed=trainer.iteration) as advance:
        if not warm:
            steps = max(0, trainer.scenario.learning_starts - len(trainer.buffer))
            advance(0, status=f"warm-up: {steps} environment steps fill the replay buffer")
            trainer.warmup()
            advance(0, status="")
        while trainer.iteration < total:
            trainer.step()
            if every and trainer.iteration % every == 0 and trainer.iteration < total:
                save_checkpoint(trainer, out_dir)
                write_curve(trainer, out_dir)
            last = [e["reward"] for e in trainer.episode_log[-100:]]
            advance(completed=trainer.iteration, status=f"reward {np.mean(last):.1f}" if last else "")


def train(scenario: Scenario, out_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Warm up, then scenario.run.iterations training iterations; returns the summary.

    `out_dir` must be new, empty, or a training directory simcode wrote (see simcode.outputs): a new
    training is refused where a checkpoint exists, `resume` where none does. While it trains the
    directory is locked against a second `train`."""
    out_dir = Path(out_dir)
    host_start = time.perf_counter()
    if outputs.claim(out_dir, "train") != "own" and resume:
        raise BadInput("--resume", f"{out_dir} holds no training to continue; allowed: a directory "
                       "simcode train wrote, or no --resume to start a training")
    out_dir.mkdir(parents=True, exist_ok=True)
    with outputs.exclusive(out_dir, "train"):
        resumed, previous_seconds = _checked_start(scenario, out_dir, resume)
        outputs.mark(out_dir, "train")
        atomic.remove_partial_files(out_dir, OUTPUT_FILES)  # a killed train's temporaries
        atomic.remove_partial_files(out_dir / "checkpoints", ["iter-*.pkl"])
        atomic.write_text(out_dir / "scenario.yaml", scenario.to_yaml())
        trainer = resumed or Trainer(scenario)
        try:
            _train_in(out_dir, trainer, warm=resumed is not None, progress=progress)
            save_checkpoint(trainer, out_dir)
            save_policy(trainer, out_dir)
            write_curve(trainer, out_dir)
        except KeyboardInterrupt:
            raise _interrupted(trainer, out_dir) from None
        summary = summarize(trainer, previous_seconds + time.perf_counter() - host_start)
        atomic.write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
