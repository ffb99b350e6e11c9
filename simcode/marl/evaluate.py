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
from collections.abc import Callable
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


def _episode_measure(key: str, total: float, last: float, steps: int) -> float:
    """A benchmark key's value for a whole episode: collisions are counted over its steps, a final_
    measure is its last step's, every other is the mean over its steps."""
    if key == "collisions":
        return total
    return last if key.startswith("final_") else total / steps


def play_episode(env, choose: Callable[[dict], dict], scenario_name: str, seed: int,
                 frames: list | None = None) -> tuple[float, dict[str, float]]:
    """One episode from a reset with `seed`, each step's actions `choose(observations)`: its total
    reward (over agents and steps) and its scenario measures (the benchmark hook's keys)."""
    obs, _ = env.reset(seed=seed)
    total, sums, last, steps = 0.0, {}, {}, 0
    while env.agents:
        obs, rew, *_ = env.step(choose(obs))
        total += sum(rew.values())
        for key, value in _benchmark(env, scenario_name).items():
            sums[key], last[key] = sums.get(key, 0.0) + float(value), float(value)
        steps += 1
        if frames is not None:
            frames.append(env.render())
    return total, {key: _episode_measure(key, sums[key], last[key], steps) for key in sums}


def _summary(totals: list[float], measures: list[dict[str, float]]) -> dict:
    out = {"mean_reward": float(np.mean(totals)), "std_reward": float(np.std(totals)),
           "rewards": [float(t) for t in totals]}
    for key in (measures[0] if measures else {}):
        out[f"mean_{key}"] = float(np.mean([m[key] for m in measures]))
    return out


ACTIONS_TEXT = {"soft": "sampled softmax vectors (Gumbel-softmax), as in training",
                "hard": "argmax of sampled softmax vectors (Gumbel-max), as in training"}


def evaluate(run_dir: Path, episodes: int = 10, render: Path | None = None, seed: int = 0) -> dict:
    run_dir = Path(run_dir)
    render = check_render_path(render) if render is not None else None
    trainer = _load_trainer(run_dir)
    return {"run_dir": str(run_dir), **evaluate_trainer(trainer, episodes, seed, render)}


def evaluate_trainer(trainer, episodes: int = 10, seed: int = 0, render: Path | None = None) -> dict:
    """The trainer's policy over `episodes` episodes: mean, spread and list of episode rewards, and
    the mean of each scenario measure (`mean_<key>` for each key of the scenario's benchmark hook;
    its headline is `scenario_measure`), with `render` the first episode as a GIF."""
    name = trainer.scenario.env.scenario
    rng = generator(seed, "evaluation")

    def choose(obs: dict) -> dict:
        _, soft = trainer.act(trainer._joint(obs), rng)
        return dict(zip(trainer.agent_names, trainer.env_actions(soft)))

    totals, measures = [], []
    for episode in range(episodes):
        frames = [] if (render is not None and episode == 0) else None
        env = trainer.env if frames is None else _render_env(trainer)
        total, measured = play_episode(env, choose, name, int(rng.integers(2**31 - 1)), frames)
        totals.append(total)
        measures.append(measured)
        if frames is not None:
            _write_gif(render, frames)
            env.close()
    out = {"scenario": name, "iteration": trainer.iteration, "episodes": episodes, "seed": seed,
           "actions": ACTIONS_TEXT[trainer.scenario.env.actions], **_summary(totals, measures)}
    if render is not None:
        out["render"] = str(render)
    return out


def scenario_measure(scenario_name: str) -> str | None:
    """The key, in `evaluate`'s and `random_policy_evaluation`'s output, of the scenario's own
    measure of success (speaker-listener: `mean_final_target_distance`; crypto:
    `mean_bob_beats_eve`), or None where it has none."""
    key = MPE_SCENARIOS[scenario_name].measure
    return None if key is None else f"mean_{key}"


def random_policy_evaluation(env_cfg: EnvConfig, episodes: int, seed: int = 0) -> dict:
    """A uniformly random policy over `episodes` episodes, as `evaluate_trainer` reports a trained
    one (mean_reward, std_reward, rewards, the scenario measures), plus the standard error of the mean
    reward (`sem_reward`).

    Each agent picks each of its action components (movement, word) uniformly from the "evaluation"
    stream of `seed`. With soft actions it gives their one-hot vectors, which mpe2 moves exactly as
    the discrete action (its index composes the components, movement first): both interfaces see the
    same episodes, so one baseline serves both."""
    from simcode.marl.envs import action_parts, discrete_index, make_env

    env = make_env(env_cfg)
    world = env.unwrapped.world
    parts = {name: action_parts(agent, world) for name, agent in zip(env.possible_agents, world.agents)}
    rng = generator(seed, "evaluation")

    def choose(obs: dict) -> dict:
        picks = {a: [int(rng.integers(n)) for n in parts[a]] for a in env.agents}
        if env_cfg.actions == "soft":
            return {a: np.concatenate([np.eye(n, dtype=np.float32)[k] for n, k in zip(parts[a], ks)])
                    for a, ks in picks.items()}
        return {a: discrete_index(parts[a], ks) for a, ks in picks.items()}

    totals, measures = [], []
    for _ in range(episodes):
        total, measured = play_episode(env, choose, env_cfg.scenario, int(rng.integers(2**31 - 1)))
        totals.append(total)
        measures.append(measured)
    return {**_summary(totals, measures), "sem_reward": float(np.std(totals) / np.sqrt(episodes))}


def random_policy_reward(env_cfg: EnvConfig, episodes: int, seed: int = 0) -> tuple[float, float]:
    """Mean episode reward (sum over agents) of a uniformly random policy, and its standard error
    (`random_policy_evaluation`)."""
    result = random_policy_evaluation(env_cfg, episodes, seed)
    return result["mean_reward"], result["sem_reward"]


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
