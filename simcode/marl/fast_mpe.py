"""mpe2's scenarios stepped with numpy array operations: the same numbers, without mpe2's Python loops.

mpe2 steps a world in Python over agents and over every pair of entities (core.World.step), so a
step grows as M^2 interpreted operations; the physics itself is a few small array operations. This
module does those operations on arrays (agents x entities) in the order mpe2 does them, so every
observation, reward, termination and truncation equals mpe2's (tests/test_fast_mpe.py checks it
against mpe2 itself, soft and hard actions, across episode boundaries):

- Resets are mpe2's own: the fast environment keeps an mpe2 environment, resets it with the seed
  given and copies its world into arrays (once per episode), so an episode starts where mpe2's does.
- Contact forces are summed for each agent in mpe2's order (its action force, then the entities in
  index order), with a sequential accumulate, not a pairwise sum: the same bits, not just close.
- Each scenario's observation and reward is one small function of the arrays (`SCENARIO_STEPS`, in
  simcode.marl.fast_scenarios; the arrays and the physics are simcode.marl.fast_world).
- Agents that speak: an action is its movement part (if the agent moves) then its communication
  part (if it speaks), mpe2's layout; what an agent said is its communication state, which the
  others' observations and some rewards read (speaker-listener, reference, crypto).
- A scenario the engine does not step is stepped by mpe2 itself (simcode.marl.envs.make_env).

Rendering stays with mpe2 (simcode.marl.envs builds an mpe2 environment for it), and `unwrapped`
copies the arrays back into the mpe2 world for whoever reads it (evaluate's benchmark data).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simcode.marl.fast_scenarios import SCENARIO_STEPS, Pieces, joined, source
from simcode.marl.fast_world import MOVES, arrays_from_world, step_world, write_back

__all__ = ["SCENARIO_STEPS", "FastMpeEnv"]


class FastMpeEnv:
    """The parallel API of mpe2's environments (reset, step, possible_agents, agents, the spaces) on
    arrays. `reference` is an mpe2 raw environment of the same scenario: it draws every reset."""

    metadata = {"render_modes": [], "is_parallelizable": True}
    render_mode = None

    def __init__(self, reference: Any, scenario: str):
        if getattr(reference.scenario, "terminate_on_success", False):
            raise ValueError("fast MPE steps episodes that end by truncation only (mpe2's default)")
        self._reference = reference
        self._step_of = SCENARIO_STEPS[scenario]
        self._soft = reference.continuous_actions
        self._local_ratio = reference.local_ratio  # simple_spread's; None elsewhere
        self.possible_agents = list(reference.possible_agents)
        self.agents: list[str] = []
        self.max_cycles = reference.max_cycles
        self._arrays = arrays_from_world(reference.world)
        self._steps = 0
        self._gathers: dict[tuple, tuple[np.ndarray, list[tuple[int, int]] | None]] = {}
        self._parts = self._action_parts(self._arrays)
        self._moves_only = bool(self._arrays.movable.all() and self._arrays.silent.all())

    def observation_space(self, agent: str):
        return self._reference.observation_space(agent)

    def action_space(self, agent: str):
        return self._reference.action_space(agent)

    @property
    def unwrapped(self):
        """The mpe2 environment, its world holding this one's positions and velocities."""
        write_back(self._arrays, self._reference.world)
        return self._reference

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._reference.reset(seed=seed, options=options)
        self._arrays = arrays_from_world(self._reference.world)
        self._gather = self._observation_indices(self._arrays)
        self._steps = 0
        self.agents = self.possible_agents[:]
        return self._observations(), {name: {} for name in self.agents}

    def _observation_indices(self, arrays) -> tuple[np.ndarray, list[tuple[int, int]] | None]:
        """Every agent's observation as indices into `source`, joined, and each one's (start, end)
        (None when all are the same length). They depend on the episode's goals only (its
        `layout`): kept for each layout seen."""
        if arrays.layout not in self._gathers:
            pieces = Pieces(arrays)
            rows = [self._step_of.observation(pieces, arrays, i) for i in range(arrays.n_agents)]
            ends = np.cumsum([len(row) for row in rows]).tolist()
            splits = None if len({len(row) for row in rows}) == 1 else list(zip([0] + ends[:-1], ends))
            self._gathers[arrays.layout] = (np.array(joined(rows), dtype=np.intp), splits)
        return self._gathers[arrays.layout]

    @staticmethod
    def _action_parts(arrays) -> tuple[np.ndarray, np.ndarray]:
        """Where the movers' movements (movers, 5) and the speakers' words (speakers, dim_c) sit in
        the agents' soft actions joined end to end: each action is its movement then its word."""
        lengths = MOVES * arrays.movable + arrays.comm.shape[1] * ~arrays.silent
        starts = np.cumsum(lengths) - lengths
        moves = starts[arrays.movers, None] + np.arange(MOVES)
        words = starts[arrays.speakers, None] + MOVES * arrays.movable[arrays.speakers, None]
        return moves, words + np.arange(arrays.comm.shape[1])

    def _split_actions(self, actions: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """The movers' movements and the speakers' words (float64 rows) from the agents' actions.
        Soft: the vectors' parts (a word is its part of the vector, as mpe2 keeps it: float32
        numbers, exact in float64). Hard: mpe2's Discrete index, movement-first (index % 5 is the
        movement, index // 5 the word; one that does not move gives its word alone); a word is
        its one-hot vector."""
        arrays = self._arrays
        if self._moves_only:  # every agent moves and none speaks: the actions are the movements
            if self._soft:
                return np.array([actions[name] for name in self.agents]), None
            return np.array([int(actions[name]) for name in self.agents], dtype=np.intp), None
        if self._soft:
            joint = np.concatenate([actions[name] for name in self.agents])
            moves, words = self._parts
            return joint[moves], joint[words].astype(np.float64)
        joint = np.array([int(actions[name]) for name in self.agents], dtype=np.intp)
        said = joint[arrays.speakers] // np.where(arrays.movable[arrays.speakers], MOVES, 1)
        return joint[arrays.movers] % MOVES, np.eye(arrays.comm.shape[1])[said]

    def _observations(self) -> dict[str, np.ndarray]:
        indices, splits = self._gather
        extras = self._step_of.extras
        values = source(self._arrays, None if extras is None else extras(self._arrays))[indices]
        if splits is None:
            rows = values.reshape(self._arrays.n_agents, -1)
        else:
            rows = [values[start:end] for start, end in splits]
        return dict(zip(self.possible_agents, rows))

    def step(self, actions: dict):
        """One step of every agent, as mpe2's parallel step: observations, rewards, terminations,
        truncations and infos keyed by agent; after the last cycle no agent is left."""
        if not self.agents:
            return {}, {}, {}, {}, {}
        moves, said = self._split_actions(actions)
        step_world(self._arrays, moves, said, self._soft)
        if self._local_ratio is not None:
            rewards = self._step_of.rewards(self._arrays, self._local_ratio)
        else:
            rewards = self._step_of.rewards(self._arrays)
        self._steps += 1
        truncated = self._steps >= self.max_cycles  # these scenarios never terminate (mpe2's default)
        names = self.agents
        observations = self._observations()
        if truncated:
            self.agents = []
        return (observations, dict(zip(names, rewards.tolist())), dict.fromkeys(names, False),
                dict.fromkeys(names, truncated), {name: {} for name in names})

    def render(self):
        raise NotImplementedError("the fast engine does not render; simcode renders with mpe2")

    def close(self) -> None:
        """Nothing to free (the mpe2 environment inside is never rendered)."""
