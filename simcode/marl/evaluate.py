"""`simcode evaluate`: run a saved policy for some episodes; mean reward, benchmark data, a GIF.

Actions are sampled as in training (softmax of the policy's logits plus Gumbel noise, given to the
environment as that vector or its argmax, per `env.actions`) from the "evaluation" stream of `seed`;
each episode is reset with a seed from the same stream.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from simcode import atomic, outputs
from simcode.config import EnvConfig, Scenario
from simcode.errors import BadInput
from simcode.mpe_scenarios import MPE_SCENARIOS
from simcode.seeding import generator

POLICY_FILE = "policy.npz"
RENDER_SUFFIXES = (".gif",)
RENDER_COMMENT = b"rendered by simcode"  # in the GIF, so that simcode replaces only its own renders


def save_policy(trainer, run_dir: Path) -> Path:
    """The trainer's agents' flat states and the scenario, as `evaluate` reads them (atomic write)."""
    return write_policy(run_dir, trainer.scenario, trainer.states(), trainer.iteration)


def write_policy(run_dir: Path, scenario: Scenario, states: list[np.ndarray], iteration: int) -> Path:
    """Flat agent states and their scenario as `evaluate` reads them (atomic write)."""
    path = Path(run_dir) / POLICY_FILE
    arrays = {f"state_{j}": s for j, s in enumerate(states)}
    with atomic.replacing(path) as tmp:
        np.savez(tmp, scenario=np.array(json.dumps(scenario.to_dict())), iteration=np.array(iteration), **arrays)
    return path


def _load_trainer(run_dir: Path):
    from simcode.marl.trainer import Trainer

    allowed = "allowed: a directory written by simcode train or simcode run"
    if run_dir.is_file():
        raise BadInput("run_dir", f"{run_dir} is a file, not a run directory; {allowed}")
    if not run_dir.is_dir():
        raise BadInput("run_dir", f"{run_dir} not found; {allowed}")
    policy = run_dir / POLICY_FILE
    if policy.is_file():
        return _load_policy(policy)
    found = sorted((run_dir / "checkpoints").glob("iter-*.pkl"))
    if not found:
        raise BadInput("run_dir", f"{run_dir} has no {POLICY_FILE} or checkpoint; {allowed}")
    return Trainer.load(found[-1])


POLICY_ALLOWED = "allowed: the policy.npz written by simcode train or simcode run"
# What numpy raises on a file that is not a readable .npz (garbage, truncated, a pickle).
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _load_policy(path: Path):
    """A trainer holding the policy in `path`, or BadInput naming the file and what is wrong."""
    from simcode.marl.trainer import Trainer, check_states, saved_scenario

    try:
        with np.load(path) as data:  # no pickles: allow_pickle stays False
            arrays = {name: data[name] for name in data.files}
        text, iteration = str(arrays["scenario"]), int(arrays["iteration"])
    except (*NPZ_ERRORS, AttributeError, TypeError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
        raise BadInput("", f"not a policy simcode can read (truncated or corrupt: {reason}); {POLICY_ALLOWED}",
                       str(path)) from None
    try:
        scenario = saved_scenario(json.loads(text))
    except ValueError:  # JSON or pydantic
        raise BadInput("scenario", f"not a scenario simcode wrote; {POLICY_ALLOWED}", str(path)) from None
    trainer = Trainer(scenario)
    states = [arrays.get(f"state_{j}") for j in range(trainer.n_agents)]
    if any(state is None for state in states):
        raise BadInput("state_*", f"{sum(s is not None for s in states)} agent states; allowed: "
                                  f"{trainer.n_agents}, one per agent of its scenario", str(path))
    check_states(states, trainer.state_sizes, path, key="state")
    trainer.install([np.asarray(state, dtype=np.float32) for state in states])
    trainer.iteration = iteration
    return trainer


def _benchmark(env, scenario_name: str) -> dict:
    """This step's scenario benchmark data (simcode.mpe_scenarios), summed over agents where it is a count."""
    summary = MPE_SCENARIOS[scenario_name].benchmark
    return summary(env.unwrapped.scenario, env.unwrapped.world) if summary else {}


ACTIONS_TEXT = {"soft": "sampled softmax vectors (Gumbel-softmax), as in training",
                "hard": "argmax of sampled softmax vectors (Gumbel-max), as in training"}


def evaluate(run_dir: Path, episodes: int = 10, render: Path | None = None, seed: int = 0) -> dict:
    run_dir = Path(run_dir)
    render = check_render_path(render) if render is not None else None
    trainer = _load_trainer(run_dir)
    name = trainer.scenario.env.scenario
    rng = generator(seed, "evaluation")
    totals, bench = [], []
    for episode in range(episodes):
        frames = [] if (render is not None and episode == 0) else None
        env = trainer.env if frames is None else _render_env(trainer)
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        total, sums, steps = 0.0, {}, 0
        while env.agents:
            _, soft = trainer.act(trainer._joint(obs), rng)
            obs, rew, *_ = env.step(dict(zip(trainer.agent_names, trainer.env_actions(soft))))
            total += sum(rew.values())
            for k, v in _benchmark(env, name).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            steps += 1
            if frames is not None:
                frames.append(env.render())
        totals.append(total)
        # per episode: collisions summed over steps, distances and occupancy averaged over steps
        bench.append({k: (v if k == "collisions" else v / steps) for k, v in sums.items()})
        if frames is not None:
            _write_gif(render, frames)
            env.close()
    out = {"run_dir": str(run_dir), "scenario": name, "iteration": trainer.iteration,
           "episodes": episodes, "seed": seed, "actions": ACTIONS_TEXT[trainer.scenario.env.actions],
           "mean_reward": float(np.mean(totals)), "std_reward": float(np.std(totals)),
           "rewards": [float(t) for t in totals]}
    for key in (bench[0] if bench else {}):
        out[f"mean_{key}"] = float(np.mean([b[key] for b in bench]))
    if render is not None:
        out["render"] = str(render)
    return out


def random_policy_reward(env_cfg: EnvConfig, episodes: int, seed: int = 0) -> tuple[float, float]:
    """Mean episode reward (sum over agents) of a uniformly random policy, and its standard error.

    Each agent picks one of its actions uniformly from the "evaluation" stream of `seed`. With soft
    actions it gives that action's one-hot vector, which mpe2 moves exactly as the discrete action:
    both interfaces see the same episodes, so one baseline serves both."""
    from gymnasium.spaces.utils import flatdim

    from simcode.marl.envs import make_env

    env = make_env(env_cfg)
    rng = generator(seed, "evaluation")
    totals = []
    for _ in range(episodes):
        env.reset(seed=int(rng.integers(2**31 - 1)))
        total = 0.0
        while env.agents:
            picks = {a: int(rng.integers(flatdim(env.action_space(a)))) for a in env.agents}
            if env_cfg.actions == "soft":
                picks = {a: np.eye(flatdim(env.action_space(a)), dtype=np.float32)[k] for a, k in picks.items()}
            _, rew, *_ = env.step(picks)
            total += sum(rew.values())
        totals.append(total)
    return float(np.mean(totals)), float(np.std(totals) / np.sqrt(episodes))


def _render_env(trainer):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from simcode.marl.envs import make_env

    return make_env(trainer.scenario.env, render_mode="rgb_array")


def check_render_path(path: Path) -> Path:
    """The absolute path `--render` may write: a .gif file path under directories, and not an
    existing file unless it is a GIF simcode wrote (a user's file is never replaced)."""
    path = outputs.claim_file(path, "--render", _rendered_by_simcode,
                              "exists and is not a GIF simcode rendered",
                              "a new .gif path, or a GIF simcode rendered (it is replaced)")
    if path.suffix.lower() not in RENDER_SUFFIXES:
        raise BadInput("--render", f"{path}: {path.suffix or 'no suffix'} is not a format simcode renders; "
                       f"allowed suffixes: {', '.join(RENDER_SUFFIXES)}")
    return path


def _rendered_by_simcode(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "GIF" and image.info.get("comment", b"").startswith(RENDER_COMMENT)
    except (OSError, ValueError):  # not an image at all
        return False


def _write_gif(path: Path, frames: list) -> None:
    import imageio.v2 as imageio

    with atomic.replacing(path) as tmp:
        imageio.mimsave(tmp, [np.asarray(f) for f in frames], duration=0.1, loop=0, comment=RENDER_COMMENT)
