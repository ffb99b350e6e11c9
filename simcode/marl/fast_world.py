"""An mpe2 world as arrays, and mpe2's World.step on them (the physics and the communication state).

simcode.marl.fast_mpe's environment keeps one `WorldArrays` per episode; the scenarios' observations
and rewards (simcode.marl.fast_scenarios) read it. Every operation is mpe2's, in mpe2's order, so the
numbers are mpe2's: see simcode.marl.fast_mpe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Discrete action k -> direction of the force, as mpe2's SimpleEnv._set_action: none, -x, +x, -y, +y.
HARD_DIRECTIONS = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
MOVES = len(HARD_DIRECTIONS)  # the movement component of an action that moves
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
    leader: np.ndarray  # (A,) bool: simple_world_comm's leader adversary, who sees everyone
    movable: np.ndarray  # (A,) bool
    silent: np.ndarray  # (A,) bool
    comm: np.ndarray  # (A, dim_c): what each agent said last step (mpe2's state.c); zeros when silent
    colors: np.ndarray  # every entity's colour, joined (a colour has 3 components, or dim_c in simple_crypto)
    color_starts: np.ndarray  # (E + 1,): entity e's colour is colors[color_starts[e]:color_starts[e + 1]]
    goals: tuple[int, ...]  # per agent, its goal landmark's index among the landmarks (-1: none)
    key: int  # simple_crypto: the landmark whose colour is the key (-1 elsewhere)
    n_obstacles: int  # landmarks, in this order: the obstacles (all of them elsewhere),
    n_forests: int  # then simple_world_comm's food, then its forests
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
        self.movers, self.speakers = np.flatnonzero(self.movable), np.flatnonzero(~self.silent)
        # the movers' rows of the agents' arrays: a slice (views, no copies) when every agent moves
        self.mover_rows = slice(0, n) if len(self.movers) == n else self.movers
        # the (agent, entity) pairs with a contact force (both collide, and they are not the same), as
        # flat indices into (A, E) arrays and into contact_forces' (A, 1 + E) terms
        agent, entity = np.nonzero(self.collide[:n, None] & self.collide[None, :] & self.not_self)
        self.contact_pairs = agent * len(self.pos) + entity
        self.contact_terms = agent * (1 + len(self.pos)) + 1 + entity
        self.contact_distance = self.size_sum.reshape(-1)[self.contact_pairs]
        self.measure()

    @property
    def goal(self) -> int:
        """The first agent's goal landmark (simple_adversary, simple_push: every agent's), else -1."""
        return self.goals[0] if self.goals else -1

    @property
    def layout(self) -> tuple:
        """What an episode drew that decides where each observation's numbers come from."""
        return self.goals, self.key

    def measure(self) -> None:
        """Where the entities are, seen from each agent, after every move. mpe2 computes these
        differences and distances again for the rewards, the observations and the next step's forces;
        the numbers are the same each time (a - b is exactly -(b - a)), so once is enough."""
        self.rel = self.pos[None, :, :] - self.pos[:self.n_agents, None, :]  # (A, E, 2): entity - agent
        self.squared = squared_lengths(self.rel)  # (A, E)
        self.dist = np.sqrt(self.squared)  # mpe2's sqrt(sum(square(delta)))


def _landmark_index(landmarks: list, target: Any) -> int:
    return next((k for k, lm in enumerate(landmarks) if lm is target), -1)


def _goal_landmark(agent: Any, landmarks: list) -> int:
    """The landmark an agent's scenario names as its goal: goal_b where the scenario has one (goal_a
    is then the agent that must reach it), else goal_a when it is a landmark; -1 when neither."""
    target = getattr(agent, "_goal_b", None)
    if target is None:
        target = getattr(agent, "_goal_a", None)
    return -1 if target is None else _landmark_index(landmarks, target)


def arrays_from_world(world: Any) -> WorldArrays:
    """The arrays of an mpe2 world just reset (positions, velocities, goals and colours drawn)."""
    agents, landmarks = world.agents, world.landmarks
    if any(a.collide and not a.movable for a in agents) or any(lm.movable for lm in landmarks):
        raise ValueError("fast MPE steps worlds whose landmarks do not move and whose fixed agents do not collide")
    if any(a.u_noise or a.c_noise or a.action_callback is not None for a in agents):
        raise ValueError("fast MPE steps worlds without motor or communication noise, or scripted agents")
    entities = agents + landmarks
    colors = [np.asarray(e.color, dtype=np.float64) for e in entities]
    key = getattr(agents[-1], "_key", None)  # simple_crypto's speaker holds a landmark's colour as the key
    return WorldArrays(
        pos=np.array([e.state.p_pos for e in entities], dtype=np.float64),
        vel=np.array([e.state.p_vel for e in entities], dtype=np.float64),
        size=np.array([e.size for e in entities], dtype=np.float64),
        collide=np.array([e.collide for e in entities]),
        accel=np.array([DEFAULT_ACCEL if a.accel is None else a.accel for a in agents], dtype=np.float64),
        max_speed=np.array([np.inf if a.max_speed is None else a.max_speed for a in agents]),
        mass=np.array([a.mass for a in agents], dtype=np.float64),
        adversary=np.array([bool(getattr(a, "adversary", False)) for a in agents]),
        leader=np.array([bool(getattr(a, "leader", False)) for a in agents]),
        movable=np.array([bool(a.movable) for a in agents]),
        silent=np.array([bool(a.silent) for a in agents]),
        comm=np.zeros((len(agents), world.dim_c)),  # every reset_world says nothing yet
        colors=np.concatenate(colors), color_starts=np.cumsum([0] + [len(c) for c in colors]),
        goals=tuple(_goal_landmark(a, landmarks) for a in agents),
        key=-1 if key is None else next(k for k, lm in enumerate(landmarks) if lm.color is key),
        n_obstacles=len(landmarks) - len(getattr(world, "food", ())) - len(getattr(world, "forests", ())),
        n_forests=len(getattr(world, "forests", ())),
        n_agents=len(agents), dt=world.dt, damping=world.damping,
        contact_force=world.contact_force, contact_margin=world.contact_margin,
    )


def write_back(arrays: WorldArrays, world: Any) -> None:
    """Positions, velocities and what agents said into the mpe2 world (for code that reads the
    world, as evaluate's benchmark data; not for stepping)."""
    for entity, pos, vel in zip(world.agents + world.landmarks, arrays.pos, arrays.vel):
        entity.state.p_pos = pos.copy()
        entity.state.p_vel = vel.copy()
    for agent, said in zip(world.agents, arrays.comm):
        agent.state.c = said.copy()


def squared_lengths(delta: np.ndarray) -> np.ndarray:
    """Squared lengths of (..., 2) differences, as mpe2's sum(square(delta))."""
    squared = np.square(delta)
    return squared[..., 0] + squared[..., 1]


# ------------------------------------------------------------------ physics: mpe2's World.step


def action_forces(arrays: WorldArrays, moves: np.ndarray, soft: bool) -> np.ndarray:
    """(A, 2) forces of the movers' movement actions (zero for agents that do not move): soft (movers,
    5) vectors give (a2 - a1, a4 - a3), computed in the actions' own dtype as mpe2 does; hard (movers,)
    indices give a unit direction; both times accel."""
    if soft:
        push = moves[:, 2::2] - moves[:, 1:4:2]  # columns (2, 4) - (1, 3)
        # mpe2 adds the difference to float64 zeros: 0.0 + x is x, so a cast is the same number
        push = push.astype(np.float64)
    else:
        push = HARD_DIRECTIONS[moves]
    if len(arrays.movers) == arrays.n_agents:
        return push * arrays.accel[:, None]
    forces = np.zeros((arrays.n_agents, 2))
    forces[arrays.movers] = push * arrays.accel[arrays.movers, None]
    return forces


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
    """mpe2's World.integrate_state for the agents that move (landmarks do not): position,
    damping, force, and the speed limit."""
    movers = arrays.mover_rows
    arrays.pos[movers] += arrays.vel[movers] * arrays.dt
    vel = arrays.vel[movers] * (1 - arrays.damping)
    vel += (force[movers] / arrays.mass[movers, None]) * arrays.dt
    arrays.vel[movers] = _speed_limited(vel, arrays.max_speed[movers]) if arrays.speed_limited else vel


def _speed_limited(vel: np.ndarray, max_speed: np.ndarray) -> np.ndarray:
    """mpe2 rescales a velocity faster than its agent's max_speed to that speed."""
    speed = np.sqrt(np.square(vel[:, 0]) + np.square(vel[:, 1]))
    too_fast = speed > max_speed
    if too_fast.any():
        vel[too_fast] = vel[too_fast] / speed[too_fast, None] * max_speed[too_fast, None]
    return vel


def step_world(arrays: WorldArrays, moves: np.ndarray, said: np.ndarray | None, soft: bool) -> None:
    """One mpe2 World.step: the movers' forces, contacts, integration; then what the speakers said
    (`said`, float64, one row per speaker; None when none speaks) becomes their communication state."""
    if said is not None:
        arrays.comm[arrays.speakers] = said
    if len(arrays.movers):  # else nothing moves (fixed agents do not collide, landmarks never move)
        integrate(arrays, contact_forces(arrays, action_forces(arrays, moves, soft)))
        arrays.measure()
