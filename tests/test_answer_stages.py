"""Where an answer's time went, on the SimPy clock as on the real backend (simcode.sim.protocol.Stamps), and
the simulated hosts' CPU as a CPU clock counts it (core time, crowded or not)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import simpy
import yaml

from simcode.sim.calibrate import fit_profile
from simcode.sim.hosts import SharedCores
from simcode.sim.learner import Learner
from simcode.sim.protocol import REAL_TIMINGS, Stamps, Task, answer_timings, timing_means
from simcode.sim.runner import simulate
from test_profile import synthetic_points
from test_ray_transport import ray_points, scenario


def _learners(n: int, cores: int, store, overhead: float, runs_to_end: bool = True, after: float = 0.0):
    env = simpy.Environment()
    host = SharedCores(env, cores)
    results = []
    network = SimpleNamespace(send=lambda _sender, deliver, _nbytes: results.append((deliver.args[0], env.now)))
    cluster = SimpleNamespace(env=env, learner_hosts=[host] * n, wait_for_ack=False, cancel=True, iteration=0,
                              runs_to_end=runs_to_end, network=network, take_in=lambda *a: None, result_nbytes=8,
                              store=store, task_overhead=overhead, task_after=after)
    return env, [Learner(cluster, i) for i in range(n)], results


def test_a_simulated_answer_is_stamped_where_a_real_one_is():
    """Two learners on 2 cores: the raylet serves their arguments one at a time (0-0.1, 0.1-0.2), each
    actor spends its 0.3 s for the task, then its row of 0.7 s (a core each), then the raylet seals its
    result (0.2). The learner has the task and its arguments once its actor's part is done, as a real
    actor's method begins: dispatch 0.4 and 0.5 from the submit at 0."""
    env, learners, results = _learners(2, 2, (0.1, 0.2), 0.3)
    for i, learner in enumerate(learners):
        learner.inbox.put(Task(iteration=0, row=i, busy=1.0, compute=1.0))
    env.run(until=5)
    (first, at_first), (second, at_second) = results
    assert (at_first, at_second) == (pytest.approx(1.3), pytest.approx(1.5))  # seals 1.1-1.3, then 1.3-1.5
    assert first.stamps == Stamps(sent=0.0, entered=pytest.approx(0.4), begun=pytest.approx(0.4),
                                  compute=pytest.approx(0.7), cpu=pytest.approx(0.7), left=pytest.approx(1.1))
    assert second.stamps.entered == pytest.approx(0.5) and second.stamps.left == pytest.approx(1.2)
    compute, dispatch, queued, delivery, cpu = answer_timings(second.stamps, taken=1.6)
    assert (compute, dispatch, queued, delivery, cpu) == pytest.approx((0.7, 0.5, 0.0, 0.4, 0.7))


def test_a_task_queued_behind_a_computation_run_to_its_end_says_so():
    """On Ray a cancelled computation runs to its end (1 s from 0); the next task, arrived at 0.5, waits in
    the inbox until 1.0: queued 0.5, then computes 1.0 to 2.0."""
    env, (learner,), results = _learners(1, 1, None, 0.0)
    learner.cluster.store = None
    learner.inbox.put(Task(iteration=0, row=0, busy=1.0, compute=1.0))

    def controller():
        yield env.timeout(0.5)
        learner.process.interrupt()
        learner.cluster.iteration = 1
        learner.cluster.store = (0.0, 0.0)  # stamps are kept on Ray
        learner.inbox.put(Task(iteration=1, row=0, busy=1.0, compute=1.0, sent=0.5, arrived=0.5))
    env.process(controller())
    env.run(until=5)
    (result, at), = results
    assert at == pytest.approx(2.0)
    compute, dispatch, queued, _, cpu = answer_timings(result.stamps, taken=2.0)
    assert (compute, dispatch, queued, cpu) == pytest.approx((1.0, 0.0, 0.5, 1.0))


def test_a_row_cancelled_in_its_actors_part_is_not_computed():
    """Cancelled while its actor's part (0.3 s) runs, on Ray, the part runs to its end and the row never
    begins, as a real actor acked before its method begins skips it: the host did 0.3 s of work."""
    env, (learner,), results = _learners(1, 1, (0.0, 0.0), 0.3)
    host = learner.host
    learner.inbox.put(Task(iteration=0, row=0, busy=1.0, compute=1.0))

    def controller():
        yield env.timeout(0.1)
        learner.process.interrupt()
        learner.cluster.iteration = 1
    env.process(controller())
    env.run(until=5)
    assert results == [] and host.cpu_seconds(env.now) == pytest.approx(0.3)


def test_a_crowded_host_counts_the_core_time_its_computations_held():
    """Two computations of 1 s of work on 1 core at crowded 0.5 take 4 s: the core was busy for all of it
    (a CPU clock counts 2 s each), not for the 2 s of work."""
    env = simpy.Environment()
    host = SharedCores(env, 1, crowded=0.5)
    jobs = [host.compute(1.0), host.compute(1.0)]
    env.run(until=env.all_of(jobs))
    assert env.now == pytest.approx(4.0)
    assert [job.value for job in jobs] == pytest.approx([2.0, 2.0])
    assert host.cpu_seconds(env.now) == pytest.approx(4.0)


def test_timing_means_are_over_the_answers_and_nan_without_any():
    means = timing_means([(1.0, 2.0, 0.0, 3.0, 0.5), (3.0, 4.0, 1.0, 5.0, 1.5)])
    assert means == {"learner_compute": 2.0, "ray_dispatch": 3.0, "learner_queued": 0.5, "ray_delivery": 4.0,
                     "learner_cpu": 1.0}
    assert all(value != value for value in timing_means([]).values())  # nan: no answer arrived


@pytest.mark.parametrize("network", ["ray", "links"])
def test_a_simulated_run_on_ray_keeps_where_its_answers_time_went(tmp_path, network):
    """On Ray, each learner a machine of its own: its row's compute and CPU are the priced row, nothing
    queues, and its dispatch and delivery are Ray's (positive). Off Ray, no such columns."""
    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump()))
    sc = scenario(path, network)
    trace = simulate(sc).trace
    if network != "ray":
        assert not set(REAL_TIMINGS) & set(trace.columns)
        return
    from simcode.sim.workload import shapes_of

    shapes = shapes_of(sc)
    row = profile.ray.learner.seconds(shapes.update_flops[0] / 1e9, sum(shapes.state_sizes))
    assert trace["learner_compute"].to_numpy() == pytest.approx(row)
    assert trace["learner_cpu"].to_numpy() == pytest.approx(row)
    assert (trace["learner_queued"] == 0).all()
    assert (trace["ray_dispatch"] > 0).all() and (trace["ray_delivery"] > 0).all()


def test_the_actors_part_after_the_row_ships_the_result_after_the_straggler_waits():
    """Of the actor's 0.3 s for the task, 0.1 s comes after the row (task_after): the row runs 0.2-0.9,
    the straggler waits 0.5 s more (busy 1.5), then the actor ships its result (1.4-1.5) and the raylet seals
    it (1.5-1.7). The answer leaves at 1.4, when the real learner's method returns."""
    env, (learner,), results = _learners(1, 1, (0.0, 0.2), 0.3, after=0.1)
    learner.inbox.put(Task(iteration=0, row=0, busy=1.5, compute=1.0))
    env.run(until=5)
    (result, at), = results
    assert at == pytest.approx(1.7)
    assert result.stamps.begun == pytest.approx(0.2) and result.stamps.compute == pytest.approx(0.7)
    assert result.stamps.left == pytest.approx(1.4)
    assert learner.host.cpu_seconds(env.now) == pytest.approx(1.0 + 0.2)  # the task's work and the seal


def _ray_cost(tmp_path, **ray):
    """(the synthetic profile, the cost model of a 3-agent uncoded scenario on Ray with it), its ray section's
    parts set as `ray` says."""
    from simcode.sim.cost import make_cost
    from simcode.sim.workload import shapes_of

    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    data = profile.model_dump()
    data["ray"].update(ray)
    path = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data))
    sc = scenario(path)
    flops = shapes_of(sc).update_flops
    return profile, make_cost(sc, flops, flops)


def test_a_profile_places_the_actors_measured_share_before_the_row(tmp_path):
    """task_before 0.4: 60% of the actor's CPU per task comes after the row; a profile without it has all
    of it before."""
    for before, after_share in ((0.4, 0.6), (None, 0.0)):
        cost = _ray_cost(tmp_path, task_before=before)[1]
        assert cost.task_after == pytest.approx(after_share * cost.task_overhead) and cost.task_overhead > 0


def test_on_ray_the_decode_reads_every_row_it_uses_where_ray_delivered_it(tmp_path):
    """With ray.delivered: a copy-only decode (uncoded) costs per_decode and per_value for each of the M rows
    (a profile's plain decode prices a copy-only one at 0); one that solves reads the rows it solves from too,
    then pays the solve as `decode` prices it. Without it, the plain decode."""
    from simcode.sim.cost import DecodeWork

    for delivered in (True, False):
        profile, cost = _ray_cost(tmp_path, **({} if delivered else {"delivered": None}))
        copy, solve = DecodeWork(3, 1000, copied=3, rows_used=0), DecodeWork(3, 1000, copied=1, rows_used=2)
        plain = profile.decode
        if delivered:
            read = profile.ray.delivered
            assert cost.decode_seconds(copy) == pytest.approx(read.per_decode + read.per_value * 3 * 1000)
            assert cost.decode_seconds(solve) == pytest.approx(read.per_decode + read.per_value * 3 * 1000
                                                               + plain.seconds(0, 2, 2, 1000))
        else:
            assert cost.decode_seconds(copy) == 0.0
            assert cost.decode_seconds(solve) == pytest.approx(plain.seconds(1, 2, 2, 1000))


def test_the_seeds_cancel_wait_on_ray_goes_through_the_raylet_and_ships_as_cancel_does():
    """cancel_wait on Ray: the raylet serves the arguments (0-0.1), the actor's part before (0.1-0.3), the
    row (0.3-1.0), the actor ships (1.0-1.1), the raylet seals (1.1-1.3)."""
    env, (learner,), results = _learners(1, 1, (0.1, 0.2), 0.3, after=0.1)
    learner.cluster.wait_for_ack, learner.cluster.ack_round = True, SimpleNamespace(acks=[env.event()])
    learner.inbox.put(Task(iteration=0, row=0, busy=1.0, compute=1.0))
    env.run(until=5)
    (result, at), = results
    assert at == pytest.approx(1.3)
    assert (result.stamps.begun, result.stamps.left) == (pytest.approx(0.3), pytest.approx(1.0))
