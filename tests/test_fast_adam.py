"""The flat layout of states (state.FlatLayout, fast_adam): views that alias one buffer, the same bits
as separate tensors, and the kernel property it relies on (an element's result does not depend on
where it sits in a tensor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simcode.config import EnvConfig, MaddpgConfig
from simcode.marl.bench import random_batch
from simcode.marl.envs import describe
from simcode.marl.maddpg import Update
from simcode.marl.state import ALIGN, LAYERS, PARTS, FlatLayout, Layout, net_names
from simcode.seeding import generator

ENVS = {
    "spread": {"scenario": "simple_spread", "n_agents": 3},
    "speaker_listener": {"scenario": "simple_speaker_listener"},
    "tag": {"scenario": "simple_tag"},
}


def _setup(env: dict, hidden: int = 64, **maddpg):
    cfg = MaddpgConfig(hidden=hidden, **maddpg)
    layout = Layout(describe(EnvConfig.model_validate(env), cfg))
    return layout, Update(layout, cfg), layout.initial_state(generator(0, "networks"))


def _assert_flat(state: dict[str, torch.Tensor], k: int, layout: Layout) -> None:
    """Each part of each net is one block of a buffer: FlatLayout.of finds it, it aliases the tensors,
    and every tensor starts at a multiple of ALIGN floats."""
    for part in PARTS:
        for net in LAYERS:
            tensors = [state[part + n] for n in net_names(net)]
            flat = FlatLayout([(k, *layout.param_shapes[part + n]) for n in net_names(net)])
            block = flat.of(tensors)
            assert block._base is tensors[0]._base  # a view, not a copy
            assert all(t.data_ptr() % (4 * ALIGN) == 0 for t in tensors)
            for t, offset in zip(tensors, flat.offsets):
                assert t.data_ptr() == block.data_ptr() + 4 * offset
            last = flat.offsets[-1] + flat.numels[-1] - 1
            before = block[last].item()
            block[last] = 12.5  # writing the block writes the tensor
            assert tensors[-1].flatten()[-1].item() == 12.5
            block[last] = before


@pytest.mark.parametrize("name", list(ENVS))
def test_states_made_and_returned_are_flat_views(name):
    layout, update, state = _setup(ENVS[name])
    m = layout.n_agents
    _assert_flat(state, m, layout)
    _assert_flat(layout.unpack(layout.pack(state, list(range(m)))), m, layout)
    batch = random_batch(layout, 16, generator(1, "minibatches"))
    new = update(state, batch, list(range(m)))
    assert not any(t.is_inference() for t in new.values())  # computed in inference mode, not made in it
    _assert_flat(new, m, layout)
    _assert_flat(update(state, batch, [0, 1]), 2, layout)


def test_flat_layout_of_tensors_elsewhere_is_a_copy_with_the_same_entries():
    shapes = [(2, 3, 5), (2, 3), (2, 1)]
    flat = FlatLayout(shapes)
    assert flat.offsets == [0, 32, 48]  # each at a multiple of ALIGN
    tensors = [torch.randn(shape) for shape in shapes]
    joined = flat.of(tensors)
    assert joined.shape == (flat.size,) and joined._base is None
    for t, view in zip(tensors, flat.views(joined)):
        assert torch.equal(t, view)
    assert torch.count_nonzero(joined[30:32]) == 0 and torch.count_nonzero(joined[38:48]) == 0  # gaps


@pytest.mark.parametrize("name,hidden", [("spread", 64), ("speaker_listener", 64), ("tag", 10)])
def test_update_of_separate_tensors_gives_the_same_bits_as_of_the_flat_state(name, hidden):
    """A state whose tensors are not the flat layout's views is joined by a copy: same bits; and
    agents whose Adam step counts differ (a decoded state) take each its own bias correction."""
    layout, update, state = _setup(ENVS[name], hidden=hidden)
    m = layout.n_agents
    everyone = list(range(m))
    separate = {n: t.clone() for n, t in state.items()}
    assert separate["actor.W1"]._base is None
    for b in (3, 64):
        batch = random_batch(layout, b, generator(b, "minibatches"))
        flat = layout.pack(update(state, batch, everyone), everyone)
        other = layout.pack(update(separate, batch, everyone), everyone)
        assert all(np.array_equal(x, y) for x, y in zip(flat, other)), b
    if hidden % ALIGN:  # then an agent's matrices in a stacked tensor are not all aligned: company matters
        return
    batch = random_batch(layout, 64, generator(5, "minibatches"))
    for t in (state, separate):
        t["step"][0] = 7.0  # agent 0's step count differs from the others'
    together = layout.pack(update(state, batch, everyone), everyone)
    for j in everyone:
        assert np.array_equal(together[j], layout.pack(update(separate, batch, [j]), [j])[0]), j


@pytest.mark.parametrize("op", ["lerp", "add_alpha", "sub", "mul", "div", "sqrt", "addcmul", "clamp", "index_select"])
def test_elementwise_kernels_do_not_depend_on_where_an_element_sits(op):
    """The flat layout moves a tensor's elements to other places of a longer tensor (vectorized loops,
    their scalar tails, other thread chunks): Adam's and the soft update's results must not change."""
    rng = torch.Generator().manual_seed(3)
    a, b = torch.randn(70_000, generator=rng), torch.rand(70_000, generator=rng) + 0.1
    f = {
        "lerp": lambda a, b: torch.lerp(a, b, 0.01),
        "add_alpha": lambda a, b: torch.add(a, b, alpha=0.1),
        "sub": torch.sub,
        "mul": lambda a, b: torch.mul(a, 0.9),
        "div": torch.div,
        "sqrt": lambda a, b: torch.sqrt(b),
        "addcmul": lambda a, b: torch.addcmul(a, b, b, value=0.001),
        "clamp": lambda a, b: torch.clamp(a, min=0),
        "index_select": lambda a, b: torch.mul(a, b.index_select(0, torch.arange(len(b)))),
    }[op]
    whole = f(a, b)
    for start in (0, 1, 5, 17, 33_000):
        for size in (1, 7, 15, 16, 31, 100, 36_999):
            part = f(a[start:start + size], b[start:start + size])
            assert torch.equal(part, whole[start:start + size]), (start, size)
