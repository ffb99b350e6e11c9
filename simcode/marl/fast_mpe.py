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
- Each scenario's observation and reward is one small function of the arrays (`SCENARIO_STEPS`).

Rendering stays with mpe2 (simcode.marl.envs builds an mpe2 environment for it), and `unwrapped`
copies the arrays back into the mpe2 world for whoever reads it (evaluate's benchmark data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Discrete action k -> direction of the force, as mpe2's SimpleEnv._set_action: none, -x, +x, -y, +y.
HARD_DIRECTIONS = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
DEFAULT_ACCEL = 5.0  # mpe2's sensitivity when an agent has no accel of its own


@dataclass
class WorldArrays:
    """One mpe2 world as arrays; entities are the agents (first, in order) and then the landmarks."""

    pos: np.ndarray  # (E, 2)
    vel: np.ndarray  # (E, 2)
    size: np.ndarray  # (E,)
    collide: np.ndarray  # (E,) bool
    accel: np.ndarray  # (A,)
    max_speed: np.ndarray  # (A,) inf where mpe2 has none
    mass: np.ndarray  # (A,)
    adversary: np.ndarray  # (A,) bool
    color: np.ndarray  # (E, 3)
    goal: int  # the goal landmark's index among the landmarks (simple_adversary, simple_push), else -1
    n_agents: int
    dt: float
    damping: float
    contact_force: float
    contact_margin: float

    def __post_init__(self) -> None:
        n = self.n_agents
        self.size_sum = self.size[:n, None] + self.size[None, :]  # (A, E): contact distance
        self.not_self = ~np.eye(n, len(self.pos), dtype=bool)  # (A, E): an entity is not its own company
        self.good, self.adversaries = np.flatnonzero(~self.adversary), np.flatnonzero(self.adversary)
        self.speed_limited = bool(np.isfinite(self.max_speed).any())
        # the (agent, entity) pairs with a contact force (both collide, and they are not the same), as
        # flat indices into (A, E) arrays and into contact_forces' (A, 1 + E) terms
        agent, entity = np.nonzero(self.collide[:n, None] & self.collide[None, :] & self.not_self)
        self.contact_pairs = agent * len(self.pos) + entity
        self.contact_terms = agent * (1 + len(self.pos)) + 1 + entity
        self.contact_distance = self.size_sum.reshape(-1)[self.contact_pairs]
        self.measure()

    def measure(self) -> None:
        """Where the entities are, seen from each agent, after every move. mpe2 computes these
        differences and distances again for the rewards, the observations and the next step's forces;
        the numbers are the same each time (a - b is exactly -(b - a)), so once is enough."""
        self.rel = self.pos[None, :, :] - self.pos[:self.n_agents, None, :]  # (A, E, 2): entity - agent
        self.dist = pair_distances(self.rel)  # (A, E)


def arrays_from_world(world: Any) -> WorldArrays:
    """The arrays of an mpe2 world just reset (positions, velocities, the goal and colours drawn)."""
    agents, landmarks = world.agents, world.landmarks
    if not all(a.movable for a in agents) or any(lm.movable for lm in landmarks):
        raise ValueError("fast MPE steps worlds whose agents move and whose landmarks do not")
    if any(a.u_noise or a.action_callback is not None for a in agents):
        raise ValueError("fast MPE steps worlds without motor noise or scripted agents")
    entities = agents + landmarks
    goal = getattr(agents[0], "goal_a", None)
    return WorldArrays(
        pos=np.array([e.state.p_pos for e in entities], dtype=np.float64),
        vel=np.array([e.state.p_vel for e in entities], dtype=np.float64),
        size=np.array([e.size for e in entities], dtype=np.float64),
        collide=np.array([e.collide for e in entities]),
        accel=np.array([DEFAULT_ACCEL if a.accel is None else a.accel for a in agents], dtype=np.float64),
        max_speed=np.array([np.inf if a.max_speed is None else a.max_speed for a in agents]),
        mass=np.array([a.mass for a in agents], dtype=np.float64),
        adversary=np.array([bool(getattr(a, "adversary", False)) for a in agents]),
        color=np.array([e.color for e in entities], dtype=np.float64),
        goal=-1 if goal is None else next(k for k, lm in enumerate(landmarks) if lm is goal),
        n_agents=len(agents), dt=world.dt, damping=world.damping,
        contact_force=world.contact_force, contact_margin=world.contact_margin,
    )


def write_back(arrays: WorldArrays, world: Any) -> None:
    """Positions and velocities into the mpe2 world (for code that reads the world, not for stepping)."""
    for entity, pos, vel in zip(world.agents + world.landmarks, arrays.pos, arrays.vel):
        entity.state.p_pos = pos.copy()
        entity.state.p_vel = vel.copy()


def pair_distances(delta: np.ndarray) -> np.ndarray:
    """Lengths of (..., 2) differences, as mpe2's sqrt(sum(square(delta)))."""
    squared = np.square(delta)
    return np.sqrt(squared[..., 0] + squared[..., 1])


# ------------------------------------------------------------------ physics: mpe2's World.step


def action_forces(arrays: WorldArrays, actions: np.ndarray, soft: bool) -> np.ndarray:
    """(A, 2) forces of the agents' actions: soft (A, 5) vectors give (a2 - a1, a4 - a3), computed in
    the actions' own dtype as mpe2 does; hard (A,) indices give a unit direction; both times accel."""
    if soft:
        push = actions[:, 2::2] - actions[:, 1:4:2]  # columns (2, 4) - (1, 3)
        # mpe2 adds the difference to float64 zeros: 0.0 + x is x, so a cast is the same number
        return push.astype(np.float64) * arrays.accel[:, None]
    return HARD_DIRECTIONS[actions] * arrays.accel[:, None]


def contact_forces(arrays: WorldArrays, applied: np.ndarray) -> np.ndarray:
    """(A, 2): each agent's applied force plus its contact forces with every colliding entity, added
    in mpe2's order (entity index) so the sums are mpe2's to the bit."""
    pairs = arrays.contact_pairs
    if not len(pairs):  # nothing collides (simple_adversary)
        return applied
    dist = arrays.dist.reshape(-1)[pairs]
    k = arrays.contact_margin
    penetration = np.logaddexp(0, -(dist - arrays.contact_distance) / k) * k
    delta = -arrays.rel.reshape(-1, 2)[pairs]  # agent - entity, as mpe2's pair (agent, entity); exact
    n, width = arrays.n_agents, 1 + len(arrays.pos)
    terms = np.zeros((n * width, 2))  # per agent: the applied force, then one per entity
    terms[::width] = applied
    terms[arrays.contact_terms] = arrays.contact_force * delta / dist[:, None] * penetration[:, None]
    return np.add.accumulate(terms.reshape(n, width, 2), axis=1)[:, -1]  # sequential, as mpe2 adds


def integrate(arrays: WorldArrays, force: np.ndarray) -> None:
    """mpe2's World.integrate_state for the agents (landmarks do not move): position, damping,
    force, and the speed limit."""
    n = arrays.n_agents
    arrays.pos[:n] += arrays.vel[:n] * arrays.dt
    vel = arrays.vel[:n] * (1 - arrays.damping)
    vel += (force / arrays.mass[:, None]) * arrays.dt
    arrays.vel[:n] = _speed_limited(vel, arrays.max_speed) if arrays.speed_limited else vel


def _speed_limited(vel: np.ndarray, max_speed: np.ndarray) -> np.ndarray:
    """mpe2 rescales a velocity faster than its agent's max_speed to that speed."""
    speed = np.sqrt(np.square(vel[:, 0]) + np.square(vel[:, 1]))
    too_fast = speed > max_speed
    if too_fast.any():
        vel[too_fast] = vel[too_fast] / speed[too_fast, None] * max_speed[too_fast, None]
    return vel


def step_world(arrays: WorldArrays, actions: np.ndarray, soft: bool) -> None:
    integrate(arrays, contact_forces(arrays, action_forces(arrays, actions, soft)))
    arrays.measure()


# ------------------------------------------------------------------ observations: one gather a step


class Pieces:
    """Where each piece of an observation sits in `source(arrays)`, the step's numbers in one vector:
    velocities, positions, relative positions, a zero, colours. A scenario lists an agent's
    observation as these indices once per episode; each step is then one gather."""

    def __init__(self, arrays: WorldArrays):
        self.n_agents = n = arrays.n_agents
        self.n_entities = e = len(arrays.pos)
        self._rel0 = 4 * e
        self._zero = self._rel0 + 2 * n * e
        self.landmarks = range(n, e)

    def vel(self, entity: int) -> list[int]:
        return [2 * entity, 2 * entity + 1]

    def pos(self, entity: int) -> list[int]:
        return [2 * (self.n_entities + entity), 2 * (self.n_entities + entity) + 1]

    def rel(self, agent: int, entity: int) -> list[int]:
        """entity position - agent position"""
        start = self._rel0 + 2 * (agent * self.n_entities + entity)
        return [start, start + 1]

    def zeros(self, count: int) -> list[int]:
        return [self._zero] * count

    def color(self, entity: int) -> list[int]:
        return [self._zero + 1 + 3 * entity + c for c in range(3)]

    def others(self, agent: int) -> list[int]:
        return [j for j in range(self.n_agents) if j != agent]


def source(arrays: WorldArrays) -> np.ndarray:
    """The step's numbers in the order `Pieces` indexes them, cast to float32 as mpe2's observe()."""
    return np.concatenate([arrays.vel.reshape(-1), arrays.pos.reshape(-1), arrays.rel.reshape(-1), [0.0],
                           arrays.color.reshape(-1)]).astype(np.float32)


def _joined(lists) -> list[int]:
    return [index for piece in lists for index in piece]


def spread_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    others = w.others(i)
    return _joined([w.vel(i), w.pos(i), *(w.rel(i, lm) for lm in w.landmarks), *(w.rel(i, o) for o in others),
                    w.zeros(2 * len(others))])  # silent agents' communication: zeros


def tag_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    others = w.others(i)
    return _joined([w.vel(i), w.pos(i), *(w.rel(i, lm) for lm in w.landmarks), *(w.rel(i, o) for o in others),
                    *(w.vel(o) for o in others if not arrays.adversary[o])])


def adversary_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    seen = _joined([*(w.rel(i, lm) for lm in w.landmarks), *(w.rel(i, o) for o in w.others(i))])
    # the adversary does not know which landmark is the goal
    return seen if arrays.adversary[i] else w.rel(i, w.n_agents + arrays.goal) + seen


def push_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    landmarks = _joined(w.rel(i, lm) for lm in w.landmarks)
    others = _joined(w.rel(i, o) for o in w.others(i))
    if arrays.adversary[i]:
        return w.vel(i) + landmarks + others
    colors = _joined(w.color(lm) for lm in w.landmarks)
    return w.vel(i) + w.rel(i, w.n_agents + arrays.goal) + w.color(i) + landmarks + colors + others


# ------------------------------------------------------------------ rewards, from the step's distances


def spread_rewards(arrays: WorldArrays, local_ratio: float) -> np.ndarray:
    n = arrays.n_agents
    hits = (arrays.dist[:, :n] < arrays.size_sum[:, :n]) & arrays.not_self[:, :n]
    agent_reward = -hits.sum(axis=1).astype(np.float64)
    nearest = arrays.dist[:, n:].min(axis=0)
    global_reward = -np.add.accumulate(nearest)[-1]  # mpe2 subtracts landmark by landmark from 0
    return global_reward * (1 - local_ratio) + agent_reward * local_ratio


def _boundary_penalty(x: np.ndarray) -> np.ndarray:
    """simple_tag's bound(x): 0 below 0.9, linear to 1, then exp(2x - 2) capped at 10."""
    if (x < 0.9).all():
        return np.zeros_like(x)
    with np.errstate(over="ignore"):
        outside = np.minimum(np.exp(2 * x - 2), 10)
    return np.where(x < 0.9, 0.0, np.where(x < 1.0, (x - 0.9) * 10, outside))


def tag_rewards(arrays: WorldArrays) -> np.ndarray:
    good, adv = arrays.good, arrays.adversaries
    dist, contact = arrays.dist[good], arrays.size_sum[good]
    caught = dist[:, adv] < contact[:, adv]  # (good, adversaries)
    rewards = np.empty(arrays.n_agents)
    rewards[adv] = 10.0 * caught.sum()
    penalty = _boundary_penalty(np.abs(arrays.pos[good]))
    rewards[good] = (-10.0 * caught.sum(axis=1) - penalty[:, 0]) - penalty[:, 1]
    return rewards


def adversary_rewards(arrays: WorldArrays) -> np.ndarray:
    dist = arrays.dist[:, arrays.n_agents + arrays.goal]
    # a good agent: -(the nearest good agent's distance) + the adversary's (mpe2's sum over adversaries)
    rewards = np.full(arrays.n_agents, -dist[~arrays.adversary].min() + dist[0])
    rewards[0] = -dist[0]
    return rewards


def push_rewards(arrays: WorldArrays) -> np.ndarray:
    dist = arrays.dist[:, arrays.n_agents + arrays.goal]
    return np.where(arrays.adversary, dist[~arrays.adversary].min() - dist, -dist)


@dataclass(frozen=True)
class ScenarioStep:
    observation: Callable[[Pieces, WorldArrays, int], list[int]]  # agent i's observation, as indices
    rewards: Callable[..., np.ndarray]  # (A,) float64; given the local ratio when mpe2 has one


SCENARIO_STEPS: dict[str, ScenarioStep] = {
    "simple_spread": ScenarioStep(spread_observation, spread_rewards),
    "simple_tag": ScenarioStep(tag_observation, tag_rewards),
    "simple_adversary": ScenarioStep(adversary_observation, adversary_rewards),
    "simple_push": ScenarioStep(push_observation, push_rewards),
}


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
        self._gathers: dict[int, tuple[np.ndarray, list[tuple[int, int]] | None]] = {}

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

    def _observation_indices(self, arrays: WorldArrays) -> tuple[np.ndarray, list[tuple[int, int]] | None]:
        """Every agent's observation as indices into `source`, joined, and each one's (start, end)
        (None when all are the same length). They depend on the goal only: kept for each goal seen."""
        if arrays.goal not in self._gathers:
            pieces = Pieces(arrays)
            rows = [self._step_of.observation(pieces, arrays, i) for i in range(arrays.n_agents)]
            lengths = {len(row) for row in rows}
            ends = np.cumsum([len(row) for row in rows]).tolist()
            splits = None if len(lengths) == 1 else list(zip([0] + ends[:-1], ends))
            self._gathers[arrays.goal] = (np.array(_joined(rows), dtype=np.intp), splits)
        return self._gathers[arrays.goal]

    def _observations(self) -> dict[str, np.ndarray]:
        indices, splits = self._gather
        values = source(self._arrays)[indices]
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
        if self._soft:
            joint = np.array([actions[name] for name in self.agents])
        else:
            joint = np.array([int(actions[name]) for name in self.agents], dtype=np.intp)
        step_world(self._arrays, joint, self._soft)
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
