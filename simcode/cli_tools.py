"""The `simcode codes` and `simcode bench` subcommands: inspect coding schemes, time the real computation.

Registered on the main command line by simcode.cli (which owns exit statuses and error lines).
"""

from __future__ import annotations

import json

import typer

from simcode.errors import BadInput

codes_app = typer.Typer(help="Inspect coding schemes: matrix, load, tolerance, conditioning.",
                        no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks of the real computation.", no_args_is_help=True)


@codes_app.command("show")
def codes_show(
    name: str = typer.Argument(..., help="Scheme name (see `simcode codes list`)."),
    agents: int | None = typer.Option(None, "--agents", "-M", min=1, help="Number of agents M (required but "
                                                                        "for centralized)."),
    learners: int | None = typer.Option(None, "--learners", "-N", min=1, help="Number of learners N (required "
                                                                              "but for centralized)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the code construction."),
    set_: list[str] | None = typer.Option(None, "--set", help="Scheme parameter, e.g. --set p=0.5.",
                                          metavar="KEY=VALUE"),
) -> None:
    """Parameters, matrix (or a summary), load per learner, tolerance and numerical conditioning of a scheme."""
    from simcode.codes import CENTRALIZED
    from simcode.codes.show import render
    from simcode.config import parse_set

    for option, value in (("--agents", agents), ("--learners", learners)):
        if value is None and name != CENTRALIZED:
            raise BadInput(option, "missing; allowed: a whole number >= 1")
    typer.echo(render(name, n_agents=agents or 0, n_learners=learners or 0, seed=seed, params=parse_set(set_)))


@codes_app.command("list")
def codes_list() -> None:
    """The coding schemes a scenario's code.name may name, and the centralized baseline."""
    from simcode.codes.show import scheme_summaries

    for name, summary, params in scheme_summaries():
        typer.echo(f"{name:16s} {summary}" + (f" (parameters: {', '.join(params)})" if params else ""))


@bench_app.command("updates")
def bench_updates(
    agents: int | None = typer.Option(None, "--agents", "-M", min=1,
                                      help="Number of agents (default: the scenario's default)."),
    batch: int = typer.Option(1024, "--batch", min=1, help="Minibatch size per agent."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed repetitions."),
    scenario: str = typer.Option("simple_spread", "--scenario", help="An MPE scenario simcode knows (its sizes)."),
    as_json: bool = typer.Option(False, "--json", help="Last line: a JSON object with ms_per_agent_update."),
) -> None:
    """Time batched MADDPG updates against a per-agent PyTorch loop."""
    from simcode.codes.show import count
    from simcode.config import MaddpgConfig
    from simcode.marl.bench import bench_env
    from simcode.memory import bench_parts, check_fits

    env = bench_env(scenario, agents)
    # Before anything is built: the agents' sizes alone can exceed any machine.
    check_fits(bench_parts(agents or 1, batch, MaddpgConfig().hidden, env),
               f"a benchmark of {count(agents, 'agent') if agents else scenario}")
    from simcode.marl.bench import bench_updates as bench_fn
    from simcode.marl.bench import format_report

    result = bench_fn(agents=agents, batch=batch, repeats=repeats, scenario=scenario)
    typer.echo(format_report(result))
    if as_json:
        typer.echo(json.dumps(result))


@bench_app.command("envs")
def bench_envs(
    scenario: str = typer.Option("simple_spread", "--scenario", help="An MPE scenario simcode knows."),
    agents: int | None = typer.Option(None, "--agents", "-M", min=1, max=100,
                                      help="Number of learning agents (default 3, or the scenario's only count)."),
    repeats: int = typer.Option(7, "--repeats", min=1, help="Timed repetitions of each engine, interleaved."),
    as_json: bool = typer.Option(False, "--json", help="Last line: a JSON object with both engines' steps/s."),
) -> None:
    """Time environment steps: the fast engine (env.engine: fast) against mpe2 itself."""
    from simcode.marl.bench_envs import bench_envs as bench_fn
    from simcode.marl.bench_envs import format_report

    result = bench_fn(scenario=scenario, agents=agents, repeats=repeats)
    typer.echo(format_report(result))
    if as_json:
        typer.echo(json.dumps(result))
