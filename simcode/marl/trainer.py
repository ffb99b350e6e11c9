"""The Trainer: environment, replay buffer and agents' states of one MADDPG run (the simulator's seam).

The controller calls `warmup()` once, then per iteration `collect()`, `sample()`,
`compute_updates(batch)` (pure: learners may compute any subsets) and `install(states)`.
`step()` is the same iteration done centrally.

Acting: each agent samples softmax(logits + gumbel) per action component (movement, communication)
as the reference does, and the replay buffer keeps those soft vectors, concatenated, which is what
the critics see. With `env.actions: soft` (the default, the reference's interface) the environment
gets the same vector as a continuous action (mpe2 reads movement, then communication); with `hard`
it gets each component's argmax (a sample of its categorical policy, by the Gumbel-max trick),
composed into mpe2's Discrete index (movement + 5 x symbol for an agent that does both). mpe2 ends episodes by
truncation at max_cycles, which is not stored as done: targets bootstrap through it (the reference
does too); terminations (none in these scenarios) are stored as done.

Checkpoints hold everything: states, buffer, counters, generator states and the environment as
(seed of the current episode, actions given to it: float32 vectors or indices) -- restoring replays
the episode, which is exact because mpe2's dynamics are deterministic given the reset seed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from simcode import atomic
from simcode.config import Scenario
from simcode.errors import BadInput, SimulationError
from simcode.marl.buffer import ReplayBuffer
from simcode.marl.envs import describe, discrete_index, make_env
from simcode.marl.maddpg import Batch, Update
from simcode.marl.state import Layout, actor_logits_numpy, net_names
from simcode.seeding import generator

CHECKPOINT_VERSION = 1


class Trainer:
    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.cfg = scenario.maddpg
        self.shapes = describe(scenario.env, scenario.maddpg)
        self.layout = Layout(self.shapes)
        self.updater = Update(self.layout, self.cfg)
        self.n_agents = self.shapes.n_agents
        self.agent_names = list(self.shapes.agent_names)
        self.state_sizes = list(self.shapes.state_sizes)
        self.state = self.layout.initial_state(generator(scenario.seed, "networks"))
        self.env_rng = generator(scenario.seed, "env")
        self.explore_rng = generator(scenario.seed, "exploration")
        self.batch_rng = generator(scenario.seed, "minibatches")
        self.buffer = ReplayBuffer(self.cfg.buffer_size, self.shapes.obs_total, self.shapes.act_total,
                                   self.n_agents)
        self.iteration = 0
        self.env_steps = 0
        self.episodes = 0
        self.episode_log: list[dict] = []  # one entry per finished episode
        self._own_cols = self.layout.own_obs_cols.numpy()
        self._own_mask = self.layout.own_obs_mask.numpy()
        self._inside = self.layout.part_masks.numpy() > 0  # (K, M, Amax): each action component's columns
        self._real_act = self._inside.any(0).reshape(-1)  # the joint action's entries of (M, Amax)
        self.env = make_env(scenario.env)
        self._new_episode()

    # ------------------------------------------------------------------ environment

    def _new_episode(self) -> None:
        self.episode_seed = int(self.env_rng.integers(2**31 - 1))
        self.episode_actions: list[list] = []  # per step, what each agent gave the environment
        self.episode_rewards = np.zeros(self.n_agents)
        obs, _ = self.env.reset(seed=self.episode_seed)
        self.obs = self._joint(obs)

    def _joint(self, obs: dict) -> np.ndarray:
        return np.concatenate([np.asarray(obs[a], dtype=np.float32) for a in self.agent_names])

    def actor_logits(self, joint_obs: np.ndarray) -> np.ndarray:
        """(M, A): every agent's actor on its own part of one joint observation.

        numpy, not torch: tiny batched torch matmuls enter a thread pool per call, which costs
        milliseconds per environment step when another process holds the second core.
        """
        actor = {n: self.state[n].numpy() for n in net_names("actor")}
        return actor_logits_numpy(actor, joint_obs[self._own_cols] * self._own_mask)

    def act(self, joint_obs: np.ndarray, rng: np.random.Generator, greedy: bool = False):
        """(sampled discrete actions, soft actions (M, Amax)) of all agents for one joint observation:
        softmax(logits + Gumbel noise from `rng`, shape (M, Amax)) per action component, zero on
        padding, and mpe2's Discrete index of its components' argmaxes; without noise when `greedy`.
        `env_actions` turns the soft actions into what the environment takes."""
        logits = self.actor_logits(joint_obs)
        if not greedy:
            logits = logits + rng.gumbel(size=logits.shape).astype(np.float32)
        if self.layout.one_part_each:
            soft = np.exp(logits - logits.max(axis=1, keepdims=True))
            soft /= soft.sum(axis=1, keepdims=True)
        else:
            soft = np.zeros_like(logits)
            for inside in self._inside:
                top = np.where(inside, logits, -np.inf).max(axis=1, keepdims=True)  # -inf: no such component
                e = np.where(inside, np.exp(logits - top), 0.0)
                soft += e / np.maximum(e.sum(axis=1, keepdims=True), 1.0)  # a component's sum is >= 1
        return self.discrete_actions(soft), soft.astype(np.float32)

    def discrete_actions(self, soft: np.ndarray) -> list[int]:
        """mpe2's Discrete index of each agent's argmaxes: movement + 5 x symbol when it has both
        (its components' product, the first varying fastest)."""
        if self.layout.one_part_each:
            return soft.argmax(axis=1).tolist()
        out = []
        for vector, parts in zip(soft, self.shapes.act_parts):
            starts = np.cumsum((0,) + parts[:-1])
            out.append(discrete_index(parts, [int(vector[a:a + n].argmax()) for a, n in zip(starts, parts)]))
        return out

    def env_actions(self, soft: np.ndarray) -> list:
        """What each agent gives the environment: its float32 soft vector (`env.actions: soft`; all its
        components) or mpe2's Discrete index of their argmaxes (`hard`)."""
        if self.scenario.env.actions == "soft":
            return list(soft) if self.layout.one_part_each else [v[:a] for v, a in zip(soft, self.shapes.act_dims)]
        return self.discrete_actions(soft)

    def joint_action(self, soft: np.ndarray) -> np.ndarray:
        """(M, Amax) -> every agent's real columns, concatenated: what the replay buffer keeps."""
        return soft.reshape(-1) if self.layout.one_part_each else soft.reshape(-1)[self._real_act]

    def _env_step(self) -> float | None:
        """One environment step with the current policies; the episode reward if the episode ended."""
        _, soft = self.act(self.obs, self.explore_rng)
        actions = self.env_actions(soft)
        obs, rew, term, trunc, _ = self.env.step(dict(zip(self.agent_names, actions)))
        next_obs = self._joint(obs)
        rewards = np.array([rew[a] for a in self.agent_names], dtype=np.float32)
        done = np.array([term[a] for a in self.agent_names], dtype=np.float32)
        self.buffer.add(self.obs, self.joint_action(soft), rewards, next_obs, done)
        self.episode_actions.append(actions)
        self.episode_rewards += rewards
        self.obs = next_obs
        self.env_steps += 1
        if all(term[a] or trunc[a] for a in self.agent_names):
            total = float(self.episode_rewards.sum())
            self.episodes += 1
            self.episode_log.append({"episode": self.episodes, "env_step": self.env_steps,
                                     "iteration": self.iteration, "reward": total,
                                     "rewards": [float(r) for r in self.episode_rewards]})
            self._new_episode()
            return total
        return None

    def _run(self, steps: int) -> list[float]:
        finished = [self._env_step() for _ in range(steps)]
        return [r for r in finished if r is not None]

    def warmup(self) -> list[float]:
        return self._run(max(0, self.scenario.learning_starts - len(self.buffer)))

    def collect(self) -> list[float]:
        return self._run(self.cfg.steps_per_iteration)

    # ------------------------------------------------------------------ learning

    def sample(self) -> Batch:
        """Each agent's own minibatch indices (as the reference), gathered into one Batch."""
        m, b = self.n_agents, self.cfg.batch_size
        index = self.batch_rng.integers(0, len(self.buffer), size=(m, b))
        d = self.buffer.gather(index)
        own = np.arange(m)
        return Batch(obs=torch.from_numpy(d["obs"]), act=torch.from_numpy(d["act"]),
                     rew=torch.from_numpy(np.ascontiguousarray(d["rew"][own, :, own])),
                     next_obs=torch.from_numpy(d["next_obs"]),
                     done=torch.from_numpy(np.ascontiguousarray(d["done"][own, :, own])),
                     seed=self.scenario.seed, iteration=self.iteration)

    def batch_nbytes(self) -> list[int]:
        return list(self.shapes.batch_nbytes)

    def states(self) -> list[np.ndarray]:
        return self.layout.pack(self.state, list(range(self.n_agents)))

    def compute_updates(self, batch: Batch, agents: list[int] | None = None) -> list[np.ndarray]:
        agents = list(range(self.n_agents)) if agents is None else [int(j) for j in agents]
        if not agents:
            return []
        return self.packed_updates(self.state, batch, agents)

    def updates_from(self, states: list[np.ndarray], batch: Batch) -> list[np.ndarray]:
        """compute_updates of every agent from the packed `states` rather than the current ones (a real
        run's deferred decode check, simcode.sim.real_check)."""
        return self.packed_updates(self.layout.unpack(states), batch, list(range(self.n_agents)))

    def packed_updates(self, state, batch: Batch, agents: list[int]) -> list[np.ndarray]:
        """The packed new states of `agents` after one MADDPG update of `state` on `batch`."""
        return self.layout.pack(self.updater(state, batch, agents), agents)

    def install(self, new_states: list[np.ndarray]) -> None:
        self.state = self.layout.unpack(new_states)
        self.iteration += 1

    def step(self) -> list[float]:
        finished = self.collect()
        states = self.compute_updates(self.sample())
        # A NaN or inf spreads through every later update while the run goes on printing numbers.
        rewards_finite = bool(np.isfinite(finished).all())
        if not (rewards_finite and all(np.isfinite(s).all() for s in states)):
            raise SimulationError(f"iteration {self.iteration}: the MADDPG training diverged: "
                                  f"{'updated states' if rewards_finite else 'episode rewards'} are not finite")
        self.install(states)
        return finished

    # ------------------------------------------------------------------ checkpoints

    def save(self, path: str | Path) -> None:
        """Everything needed to continue bit-identically, written atomically."""
        data = {
            "version": CHECKPOINT_VERSION, "scenario": self.scenario.to_dict(), "states": self.states(),
            "buffer": self.buffer.state_dict(), "iteration": self.iteration, "env_steps": self.env_steps,
            "episodes": self.episodes, "episode_log": self.episode_log,
            "rngs": {n: getattr(self, n).bit_generator.state for n in ("env_rng", "explore_rng", "batch_rng")},
            "episode": {"seed": self.episode_seed, "actions": self.episode_actions,
                        "rewards": self.episode_rewards.copy(), "obs": self.obs.copy()},
        }
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: str | Path) -> Trainer:
        """The trainer a checkpoint holds, or BadInput naming the file when it is not one simcode can
        read (truncated, corrupt, another version, or shapes that do not match its own scenario).
        A checkpoint is a pickle: like any pickle, load only files you trust."""
        data = read_checkpoint(path)
        try:
            trainer = cls(saved_scenario(data["scenario"]))
            check_states(data["states"], trainer.state_sizes, path)
            trainer.state = trainer.layout.unpack(data["states"])
            trainer.buffer = ReplayBuffer.from_state_dict(data["buffer"])
            trainer.iteration, trainer.env_steps = int(data["iteration"]), int(data["env_steps"])
            trainer.episodes, trainer.episode_log = int(data["episodes"]), list(data["episode_log"])
            for name, st in data["rngs"].items():
                getattr(trainer, name).bit_generator.state = st
            ep = data["episode"]
            obs, _ = trainer.env.reset(seed=ep["seed"])
            for actions in ep["actions"]:
                obs, *_ = trainer.env.step(dict(zip(trainer.agent_names, actions)))
            trainer.episode_seed, trainer.episode_actions = ep["seed"], list(ep["actions"])
            trainer.episode_rewards = np.array(ep["rewards"], dtype=np.float64)
            trainer.obs = trainer._joint(obs)
            replayed = np.array_equal(trainer.obs, ep["obs"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise BadInput("", f"not a checkpoint simcode can restore ({_reason(exc)}); {CHECKPOINT_ALLOWED}",
                           str(path)) from None
        if not replayed:
            raise BadInput("", "replaying the checkpoint's current episode did not reproduce its observation "
                               f"(written by another environment version?); {CHECKPOINT_ALLOWED}", str(path))
        return trainer


CHECKPOINT_ALLOWED = "allowed: a checkpoint written by simcode train"


def saved_scenario(data: dict) -> Scenario:
    """The scenario a checkpoint or policy file holds, meaning what it meant when written: one saved
    before `env.actions` existed was trained with argmax actions (hard), not today's default."""
    if isinstance(data, dict) and isinstance(data.get("env"), dict) and "actions" not in data["env"]:
        data = {**data, "env": {**data["env"], "actions": "hard"}}
    return Scenario.model_validate(data)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's mapping, or BadInput naming the file when it cannot be unpickled."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, MemoryError, IsADirectoryError) as exc:
        raise BadInput("", f"not a checkpoint simcode can read (truncated or corrupt: {_reason(exc)}); "
                           f"{CHECKPOINT_ALLOWED}", str(path)) from None
    if not isinstance(data, dict) or "version" not in data:
        raise BadInput("", f"not a checkpoint simcode wrote (no version); {CHECKPOINT_ALLOWED}", str(path))
    if data["version"] != CHECKPOINT_VERSION:
        raise BadInput("", f"checkpoint version {data['version']!r}; allowed: version {CHECKPOINT_VERSION}, "
                           "written by this simcode", str(path))
    return data


def check_states(states, sizes: list[int], path: str | Path, key: str = "states") -> None:
    """BadInput unless `states` are one finite 1-D array per agent with the scenario's state sizes."""
    if len(states) != len(sizes):
        raise BadInput(key, f"{len(states)} agent states; allowed: {len(sizes)}, one per agent of the scenario",
                       str(path))
    for j, (state, size) in enumerate(zip(states, sizes)):
        shape = tuple(np.shape(state))
        if shape != (size,):
            raise BadInput(f"{key}[{j}]", f"shape {shape}; allowed: ({size},), agent {j}'s state in this scenario",
                           str(path))
        if np.asarray(state).dtype.kind != "f":
            raise BadInput(f"{key}[{j}]", f"dtype {np.asarray(state).dtype}; allowed: floating point", str(path))
        if not np.all(np.isfinite(state)):
            raise BadInput(f"{key}[{j}]", "holds infinite or NaN values; allowed: finite parameters", str(path))
