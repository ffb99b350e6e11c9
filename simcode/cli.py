"""The `simcode` command line: parse arguments, call the library, print, set the exit status.

Exit status: 0 success, 2 bad input (one line on stderr naming the file, the key and what is
allowed; nothing written), 1 anything else.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from pathlib import Path

# The linear algebra here is on small matrices: OpenBLAS threads only add contention (a 20x
# slowdown was measured on a busy 2-core host). Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer  # noqa: E402

from simcode.cli_tools import bench_app, codes_app  # noqa: E402
from simcode.errors import BadInput, Interrupted, SimulationError  # noqa: E402

HELP = """\
simcode: how much wall-clock time does a coding scheme save when distributed
training meets stragglers?

Real MADDPG updates (PyTorch, PettingZoo MPE via mpe2) run inside a simulated
cluster clock (SimPy): a controller, N learners, a network and straggler delays.
Each coding scheme assigns agents' updates to learners; the controller decodes
all updates from the first results that suffice.

\b
Start here:
  simcode study straggler_sweep --quick     the paper's experiment, in minutes
  simcode run scenarios/spread3.yaml        one simulated training run
  simcode codes show mds --agents 15 --learners 20
  simcode train scenarios/spread3.yaml      centralized MADDPG, no simulator
"""

# -h everywhere, as --help (subcommands inherit the context settings).
app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(codes_app, name="codes")
app.add_typer(bench_app, name="bench")

BACKEND_HELP = "sim (the SimPy clock) or ray (real learners on Ray actors); default: the scenario's cluster.backend."
ADDRESS_HELP = "--backend ray: the address of a running Ray cluster (default: start a local Ray for the run)."
SET_HELP = "Override any scenario key, e.g. --set code.name=ldpc --set delay.k=2 (repeatable)."
TRAIN_SET_HELP = ("Override a scenario key training uses (env, maddpg, run, seed), e.g. --set maddpg.lr=0.001 "
                  "--set run.iterations=500 (repeatable).")
# More torch threads than this only contend (and 1e5 of them exhaust memory before the run starts).
MAX_THREADS = 1024
THREADS_HELP = ("Torch threads for the real computation (0: torch's default). On a busy machine 1 avoids "
                "threads spinning against other work.")


def _print_version(value: bool) -> None:
    if value:
        import simcode

        typer.echo(f"simcode {simcode.__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print simcode's version and exit.")) -> None:
    pass


def _set_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def _given_path(value: str) -> Path:
    """An --out or --render value; an empty one would otherwise mean the current directory."""
    if not value:
        raise typer.BadParameter("an empty path; allowed: a path to a new file or directory, or one simcode wrote")
    return Path(value)


def _scenario(path: Path, set_: list[str] | None):
    from simcode.config import load_scenario, parse_set

    return load_scenario(path, parse_set(set_))


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="Scenario YAML, e.g. scenarios/spread3.yaml."),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP, metavar="KEY=VALUE"),
    out: Path | None = typer.Option(None, "--out", parser=_given_path, metavar="DIR",
                                    help="Run directory (default runs/<scenario>-<code>)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    threads: int = typer.Option(0, "--threads", min=0, max=MAX_THREADS, help=THREADS_HELP),
    backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP),
    address: str | None = typer.Option(None, "--address", metavar="HOST:PORT", help=ADDRESS_HELP),
) -> None:
    """Simulate one coded training run (or run it for real on Ray): writes scenario.yaml, trace.csv and
    summary.json."""
    from simcode.sim.runner import DECODE_WARNING, default_run_dir, run_to_dir

    sc = _scenario(scenario, [*(set_ or []), *_backend_set(backend, address)])
    if address is not None and sc.cluster.backend != "ray":
        raise BadInput("--address", "an address is for the ray backend only; "
                                    "allowed: --backend ray --address HOST:PORT")
    _set_threads(threads)
    out = out or default_run_dir(scenario, sc)
    summary = run_to_dir(sc, out, progress=progress, address=address)
    if summary["decode_warning"]:
        typer.echo(f"simcode: warning: decode error {summary['max_decode_error']:.3g} exceeds {DECODE_WARNING:g}: "
                   f"{summary['scheme']} does not reproduce centralized training here", err=True)
    typer.echo(_run_summary(summary, out))


def _backend_set(backend: str | None, address: str | None) -> list[str]:
    """The --set that --backend stands for; BadInput for an unknown backend."""
    if backend is not None and backend not in ("sim", "ray"):
        raise BadInput("--backend", f"{backend!r} is not a backend; allowed: sim, ray")
    return [f"cluster.backend={backend}"] if backend else []


def _run_summary(summary: dict, out: Path) -> str:
    """What `simcode run` prints: where the run is, the scheme, iteration times, decode error, reward."""
    from simcode.codes.show import count

    err = summary["max_decode_error"]
    if summary["tolerance"] is None:  # centralized: the controller computes every update itself
        where = f"{count(summary['n_agents'], 'agent')} updated by the controller, no learners"
    else:
        where = (f"{count(summary['n_agents'], 'agent')} on {count(summary['n_learners'], 'learner')}, "
                 f"tolerates {count(summary['tolerance'], 'straggler')}")
    lines = [
        f"run written to {Path(out).resolve()}",
        f"  scheme {summary['scheme']}: {where}",
        f"  iteration  mean {summary['mean_iteration']:.4f} s   p99 {summary['p99_iteration']:.4f} s",
        f"  {'real     ' if summary.get('backend') == 'ray' else 'simulated'}  {summary['sim_seconds']:.2f} s over "
        f"{summary['iterations']} iterations "
        f"(host {summary['host_seconds']:.2f} s)",
        f"  decode error  {'not checked (timing workload)' if err is None else f'{err:.2e}'}",
    ]
    if summary["final_reward"] is not None:  # summary.json holds finite numbers only
        lines.append(f"  episode reward (last 10 iterations)  {summary['final_reward']:.2f}")
    if summary.get("backend") == "ray":
        lines.append("  measured on Ray: times are real seconds on these machines, not reproducible")
    elif not summary["reproducible"]:
        lines.append("  cost model 'measured': simulated times come from host timings and are not reproducible")
    return "\n".join(lines)


@app.command()
def train(
    scenario: Path = typer.Argument(..., help="Scenario YAML; only env, maddpg, run and seed are used."),
    set_: list[str] | None = typer.Option(None, "--set", help=TRAIN_SET_HELP, metavar="KEY=VALUE"),
    out: Path | None = typer.Option(None, "--out", parser=_given_path, metavar="DIR",
                                    help="Run directory (default runs/train-<scenario>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    threads: int = typer.Option(0, "--threads", min=0, max=MAX_THREADS, help=THREADS_HELP),
) -> None:
    """Centralized MADDPG with no simulator: learning curve (CSV, PNG) and checkpoints."""
    from simcode.marl.train import train as train_fn

    from simcode.scenario_checks import check_memory

    sc = _scenario(scenario, set_)
    check_memory(sc, str(scenario), training=True)  # training ignores run.workload: check its footprint
    _set_threads(threads)
    out = out or Path("runs") / f"train-{scenario.stem}"
    summary = train_fn(sc, out, resume=resume, progress=progress)
    typer.echo(f"training written to {Path(out).resolve()}", err=True)
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def study(
    name_or_file: str = typer.Argument(..., help="A study name (studies/NAME.yaml here, else the shipped study of "
                                                 "that name) or a YAML file."),
    quick: bool = typer.Option(False, "--quick", help="Shrink iterations for a first look (and CI); writes to "
                                                      "runs/study-<name>-quick unless --out is given."),
    out: Path | None = typer.Option(None, "--out", parser=_given_path, metavar="DIR",
                                    help="Study directory (default runs/study-<name>, or runs/study-<name>-quick "
                                         "with --quick)."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Local worker processes."),
    executor: str = typer.Option("local", "--executor", help="local, ray or dask."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    backend: str | None = typer.Option(None, "--backend", help="sim or ray: every run on that backend (not with a "
                                       "study that has a cluster.backend axis); default: each run's scenario."),
    address: str | None = typer.Option(None, "--address", metavar="HOST:PORT", help="The Ray cluster of the "
                                       "study's real runs (default: a local Ray for the study)."),
) -> None:
    """Run a grid of runs over a base scenario; writes results.csv, plots/ and report.md. Resumable."""
    from simcode.study.runner import run_study

    root = run_study(name_or_file, quick=quick, out=out, jobs=jobs, executor=executor, progress=progress,
                     backend=backend, address=address,
                     show=lambda table: typer.echo(
                         f"mean iteration time (simulated s, mean over seeds):\n{table}" if table else ""),
                     note=lambda text: typer.echo(text, err=True))
    drawn = (root / "plots").is_dir() and any((root / "plots").iterdir())
    typer.echo(f"study written to {root}: report.md, results.csv" + (", plots/" if drawn else ""))


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A directory written by `simcode train` or `simcode run`."),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Episodes to average over."),
    render: Path | None = typer.Option(None, "--render", parser=_given_path, metavar="FILE.gif",
                                       help="Write one episode as a GIF."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the evaluation episodes."),
) -> None:
    """Evaluate a saved policy: mean episode reward and the scenario's benchmark data."""
    from simcode.marl.evaluate import evaluate as evaluate_fn

    report = evaluate_fn(run_dir, episodes=episodes, render=render, seed=seed)
    typer.echo(f"evaluated the policy in {Path(run_dir).resolve()}", err=True)
    if render is not None:
        report["render"] = str(Path(render).resolve())
        typer.echo(f"episode written to {report['render']}", err=True)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def calibrate(
    out: Path | None = typer.Option(None, "--out", parser=_given_path, metavar="FILE",
                                    help="Profile to write (default runs/profile.yaml); replaces only a profile "
                                         "simcode calibrate wrote."),
    quick: bool = typer.Option(False, "--quick", help="Fewer repeats and steps: faster, noisier."),
    batch: int = typer.Option(1024, "--batch", min=1, help="Minibatch size per agent of the timed updates."),
    ray: bool = typer.Option(False, "--ray", help="Also measure the real backend's Ray transport and learner "
                             "rows (the profile's ray section, for cluster.network.model: ray); starts a local Ray."),
    merge: list[Path] | None = typer.Option(None, "--merge", metavar="PROFILE", help="Measure nothing: write the "
                                            "mean of these profiles (two or more calibrations of this machine at "
                                            "different times; a virtual machine's pace drifts by 5 to 10% in an "
                                            "hour). Repeatable."),
) -> None:
    """Measure this machine running simcode's own work and write a cost profile (cost.model: profile).

    Calibrate on a quiet machine. Where its pace drifts, calibrate a few times, minutes apart, and merge:
    simcode calibrate --ray --out a.yaml; ...; simcode calibrate --merge a.yaml --merge b.yaml --out p.yaml"""
    from simcode.config import MaddpgConfig
    from simcode.memory import bench_parts, check_fits
    from simcode.sim.calibrate import DEFAULT_OUT, UPDATE_AGENTS, check_output, write_profile
    from simcode.sim.calibrate import calibrate as calibrate_fn

    out = out or DEFAULT_OUT
    check_output(out)  # before minutes of measuring
    if merge:
        _merge_profiles(merge, out, ray or quick)
        return
    # Timed as `bench updates` times them, at the largest M calibrate measures: only --batch sizes them here.
    parts = bench_parts(max(UPDATE_AGENTS), batch, MaddpgConfig().hidden)
    check_fits([("--batch", what, nbytes) for _, what, nbytes in parts], "the timed updates")
    phases, total = iter(range(1, 7)), 6 if ray else 5
    profile, report = calibrate_fn(batch=batch, quick=quick, ray=ray, progress=lambda phase: typer.echo(
        f"calibrate: measuring {phase} ({next(phases)}/{total})", err=True))
    typer.echo("\n".join(report))
    write_profile(profile, out)
    typer.echo(f"profile written to {Path(out).resolve()}; use it with --set cost.model=profile "
               f"--set cost.profile={Path(out).resolve()}")


def _merge_profiles(paths: list[Path], out: Path, measuring: bool) -> None:
    from simcode.sim.calibrate import write_profile
    from simcode.sim.calibrate_merge import merge_profiles

    if measuring:
        raise BadInput("--merge", "measures nothing; allowed: --merge with --out alone (not --ray or --quick)")
    if any(Path(path).resolve() == Path(out).resolve() for path in paths):
        raise BadInput("--out", f"{out} is one of the merged profiles; allowed: a new file, or a profile "
                                "simcode calibrate wrote that is not merged")
    write_profile(merge_profiles(paths), out)
    typer.echo(f"profile written to {Path(out).resolve()}: the mean of {len(paths)} profiles")


# A path the user gave that cannot name a file at all (a component is a file, or it is too long).
USER_PATH_ERRORS = {errno.ENOTDIR, errno.ENAMETOOLONG}


def _describe_os_error(exc: OSError) -> str:
    """'<path>: <reason>' for a failed file operation, without the traceback."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    paths = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
    return f"{paths}: {reason}"


def _say_interrupted(exc: KeyboardInterrupt) -> None:
    """One line: what the interrupted command kept, when it says (Interrupted), else just that."""
    print(f"simcode: {exc}" if isinstance(exc, Interrupted) else "simcode: interrupted", file=sys.stderr)


def _interruptible(command):
    """`command`, saying in one line what Ctrl-C kept: typer would turn the KeyboardInterrupt into
    a silent exit 130 before `main` sees it."""
    @functools.wraps(command)  # typer reads the parameters through __wrapped__
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            _say_interrupted(exc)
            raise typer.Exit(130) from None
    return wrapper


for _command in (*app.registered_commands, *codes_app.registered_commands, *bench_app.registered_commands):
    _command.callback = _interruptible(_command.callback)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning BadInput into one line and exit status 2."""
    try:
        # Without standalone mode click returns what ended the command: typer.Exit's code, or None.
        status = app(args=argv, standalone_mode=False)
        if isinstance(status, int):
            return status
    except BadInput as exc:
        print(f"simcode: {exc}", file=sys.stderr)
        return 2
    except SimulationError as exc:
        print(f"simcode: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"simcode: {_describe_os_error(exc)}", file=sys.stderr)
        return 2 if exc.errno in USER_PATH_ERRORS else 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("simcode: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt as exc:
        _say_interrupted(exc)
        return 130
    except Exception as exc:  # click's usage errors
        # By class name: typer >= 0.2x raises its own vendored copies of click's exceptions.
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        if "UsageError" in kinds:
            print(f"simcode: {exc.format_message()}", file=sys.stderr)
            return 2
        if "ClickException" in kinds:
            exc.show()
            return exc.exit_code
        raise
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
