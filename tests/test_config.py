"""Scenario loading: defaults, --set overrides, and one-line errors that name the file and key."""

from pathlib import Path

import pytest

from simcode.config import Scenario, load_scenario, parse_set
from simcode.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_shipped_scenario_loads_with_design_keys():
    sc = load_scenario(ROOT / "scenarios" / "spread3.yaml")
    assert sc.env.scenario == "simple_spread" and sc.n_agents == 3
    assert sc.cluster.n_learners == 5 and sc.code.name == "mds"
    assert sc.delay.name == "fixed_k" and sc.delay.params() == {"k": 1, "delay": 0.25}
    assert sc.learning_starts == 1024 * 25


def test_set_reaches_nested_keys_and_parses_yaml_values():
    sc = load_scenario(ROOT / "scenarios" / "spread3.yaml",
                       parse_set(["maddpg.lr=0.001", "cluster.timeout=2.5", "delay.k=2", "run.workload=timing"]))
    assert sc.maddpg.lr == 0.001 and sc.cluster.timeout == 2.5
    assert sc.delay.params()["k"] == 2 and sc.run.workload == "timing"


def test_changing_the_scheme_drops_the_old_schemes_parameters(tmp_path):
    path = write(tmp_path, "code: {name: random_sparse, p: 0.5}\ncluster: {n_learners: 5}\n")
    sc = load_scenario(path, {"code.name": "mds"})
    assert sc.code.name == "mds" and sc.code.params() == {}


@pytest.mark.parametrize("text, overrides, key", [
    ("env: {scenario: simple_spread}\nbogus: 1\n", {}, "bogus"),
    ("maddpg: {lr: -1}\n", {}, "maddpg.lr"),
    ("maddpg: {lrr: 0.1}\n", {}, "maddpg.lrr"),
    ("code: {name: nope}\n", {}, "code.name"),
    ("cluster: {n_learners: 2}\nenv: {n_agents: 3}\ncode: {name: mds}\n", {}, "cluster.n_learners"),
    ("delay: {name: fixed_k, k: 9}\ncluster: {n_learners: 5}\n", {}, "delay.k"),
    ("delay: {name: bimodal, p_slow: 1.5, slowdown: 1}\n", {}, "delay.p_slow"),
    ("code: {name: random_sparse, p: 1.5}\n", {}, "code.p"),
    ("run: {workload: magic}\n", {}, "run.workload"),
    ("", {"cluster.on_decode": "wait"}, "cluster.on_decode"),
])
def test_bad_input_names_file_and_key(tmp_path, text, overrides, key):
    path = write(tmp_path, text)
    with pytest.raises(BadInput) as info:
        load_scenario(path, overrides)
    assert info.value.key == key
    assert info.value.file == str(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(BadInput, match="malformed YAML"):
        load_scenario(write(tmp_path, "env: {scenario: [\n"))
    with pytest.raises(BadInput, match="file not found"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(BadInput, match="expected a mapping"):
        load_scenario(write(tmp_path, "- 1\n- 2\n"))


def test_set_needs_key_value():
    with pytest.raises(BadInput, match="key=value"):
        parse_set(["novalue"])


@pytest.mark.parametrize("item", [".env=3", "env.=3", "env..n_agents=3"])
def test_set_refuses_a_key_with_an_empty_part(item):
    with pytest.raises(BadInput, match="has an empty part") as info:
        parse_set([item])
    assert info.value.key == "--set" and item in str(info.value)


def test_digest_is_stable_and_sensitive():
    a, b = Scenario(), Scenario()
    assert a.digest() == b.digest()
    assert a.digest() != Scenario(seed=1).digest()


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_and_runs_on_the_timing_workload(path):
    from simcode.sim.runner import simulate

    sc = load_scenario(path, {"run.workload": "timing", "run.iterations": 5})
    assert simulate(sc).summary["iterations"] == 5
    # The shipped profile prices every shipped scenario (calibrate measures each one's env steps).
    profiled = load_scenario(path, {"run.workload": "timing", "run.iterations": 5, "cost.model": "profile",
                                    "cost.profile": "epyc-2core.yaml"})
    assert simulate(profiled).summary["sim_seconds"] > 0


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_study_expands(path):
    from simcode.study.spec import load_study

    assert len(load_study(str(path), quick=True).runs) > 1


def test_measured_cost_needs_real_computation(tmp_path):
    with pytest.raises(BadInput) as info:
        load_scenario(write(tmp_path, "cost: {model: measured}\nrun: {workload: timing}\n"))
    assert info.value.key == "cost.model"


# --------------------------------------------------------------------------- what a user types

def test_a_binary_file_is_bad_input_naming_it(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary")
    with pytest.raises(BadInput, match="not a text file") as info:
        load_scenario(path)
    assert info.value.file == str(path)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    with pytest.raises(BadInput, match=r"line 3: key 'lr' given twice \(first on line 2\)") as info:
        load_scenario(write(tmp_path, "maddpg:\n  lr: 0.1\n  lr: 0.2\n"))
    assert info.value.file == str(tmp_path / "s.yaml")
    with pytest.raises(BadInput, match="line 3: key 'env' given twice"):
        load_scenario(write(tmp_path, "env: {n_agents: 3}\nseed: 1\nenv: {n_agents: 4}\n"))
    with pytest.raises(BadInput, match="given twice"):
        parse_set(["delay={name: none, name: fixed_k}"])


def test_exponents_are_numbers_in_files_and_in_set(tmp_path):
    sc = load_scenario(write(tmp_path, "maddpg: {buffer_size: 1e6, lr: 1E-3}\ncost: {flops_rate: 5e+9}\n"),
                       parse_set(["delay.name=fixed_k", "delay.delay=1e6", "delay.k=1"]))
    assert sc.maddpg.buffer_size == 1_000_000 and isinstance(sc.maddpg.buffer_size, int)
    assert sc.maddpg.lr == 1e-3 and sc.cost.flops_rate == 5e9
    assert sc.delay.params()["delay"] == 1e6
    assert parse_set(["a=1e6", "b=-2.5E-3", "c=7", "d=1e", "e=v1e6"]) == {"a": 1e6, "b": -2.5e-3, "c": 7,
                                                                         "d": "1e", "e": "v1e6"}
    # A whole float is an integer, a fraction is not; a float key takes an int.
    with pytest.raises(BadInput, match="not a whole number"):
        load_scenario(write(tmp_path, "run: {iterations: 2.5e0}\n"))
    sc = load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set(["maddpg.lr=1", "cluster.timeout=2"]))
    assert sc.maddpg.lr == 1.0 and sc.cluster.timeout == 2.0


@pytest.mark.parametrize("overrides, key", [
    ({"run.iterations": True}, "run.iterations"),
    ({"maddpg.hidden": True}, "maddpg.hidden"),
    ({"maddpg.gamma": True}, "maddpg.gamma"),
])
def test_a_boolean_is_no_number(tmp_path, overrides, key):
    with pytest.raises(BadInput) as info:
        load_scenario(write(tmp_path, ""), overrides)
    assert info.value.key == key


@pytest.mark.parametrize("item", ["maddpg.lr=.inf", "cluster.timeout=.inf", "cluster.network.bandwidth=.inf",
                                  "maddpg.grad_clip=.inf", "cost.flops_rate=.inf", "cluster.network.latency=.inf"])
def test_infinite_or_nan_numbers_are_refused(tmp_path, item):
    with pytest.raises(BadInput, match="not finite") as info:
        load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set([item]))
    assert info.value.key == item.split("=")[0]


def _numeric_fields(model, prefix=""):
    """(dotted key, field) of every number of the schema; a code or delay section's under its name
    (`code.ldpc.dv`): each scheme and delay model declares its own."""
    from typing import get_args

    from simcode.params import value_types

    for name, field in model.model_fields.items():
        annotation = field.annotation
        if field.discriminator:
            for member in get_args(annotation):
                yield from _numeric_fields(member, f"{prefix}{name}.{member.model_fields['name'].default}.")
        elif isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            yield from _numeric_fields(annotation, f"{prefix}{name}.")
        elif value_types(annotation) and all(t in (int, float) for t in value_types(annotation)):
            yield f"{prefix}{name}", field


def test_every_number_in_the_schema_has_both_bounds():
    fields = dict(_numeric_fields(Scenario))
    assert "maddpg.lr" in fields and "cluster.network.latency" in fields
    assert "code.ldpc.dv" in fields and "delay.lognormal.mu" in fields
    for key, field in fields.items():
        kinds = {attr for item in field.metadata for attr in ("gt", "ge", "lt", "le") if getattr(item, attr, None)
                 is not None}
        assert kinds & {"gt", "ge"} and kinds & {"lt", "le"}, key


@pytest.mark.parametrize("item, key", [("maddpg.lr=5", "maddpg.lr"), ("env.max_cycles=10000000000", "env.max_cycles"),
                                       ("cost.decode=2", "cost.decode"),
                                       ("cluster.network.latency=1e10", "cluster.network.latency")])
def test_numbers_beyond_their_upper_bound_say_what_is_allowed(item, key):
    with pytest.raises(BadInput, match="out of range; allowed: ") as info:
        load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set([item]))
    assert info.value.key == key


@pytest.mark.parametrize("items, needed", [
    (["maddpg.buffer_size=100", "maddpg.learning_starts=0", "maddpg.steps_per_iteration=10"], "maddpg.batch_size"),
    (["maddpg.buffer_size=2000", "maddpg.batch_size=128"], "maddpg.learning_starts"),
    (["maddpg.buffer_size=99", "maddpg.batch_size=32", "maddpg.learning_starts=64"], "maddpg.steps_per_iteration"),
])
def test_the_buffer_holds_at_least_what_one_iteration_needs(items, needed):
    with pytest.raises(BadInput, match=f"smaller than {needed}") as info:
        load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set(items))
    assert info.value.key == "maddpg.buffer_size"


def test_a_scenario_too_big_for_memory_is_refused_before_anything_is_built():
    with pytest.raises(BadInput, match="GiB of memory") as info:
        load_scenario(ROOT / "scenarios" / "spread3.yaml", {"env.n_agents": 100_000, "code.name": "centralized"})
    assert "env.n_agents" in info.value.key


# --------------------------------------------------------------------------- scheme and delay parameters

def test_the_schema_carries_each_schemes_and_delay_models_parameters():
    """The scenario's schema is made from the classes' Params: every parameter, with its description."""
    from simcode.codes import CODES
    from simcode.delays import DELAYS

    schema = Scenario.model_json_schema()
    for section, registry in (("code", CODES), ("delay", DELAYS)):
        mapping = schema["properties"][section]["discriminator"]["mapping"]
        assert set(registry) <= set(mapping)
        for name, cls in registry.items():
            properties = schema["$defs"][mapping[name].rsplit("/", 1)[-1]]["properties"]
            assert properties["name"]["const"] == name
            for key, field in cls.Params.model_fields.items():
                assert properties[key]["description"] == field.description, (name, key)


def test_the_resolved_scenario_holds_every_parameter_the_scheme_used():
    from simcode.codes.ldpc import LDPC
    from simcode.delays.iid import Pareto

    sc = load_scenario(ROOT / "scenarios" / "spread3.yaml", {"code.name": "ldpc", "delay.name": "pareto",
                                                             "delay.scale": 0.1, "delay.alpha": 3})
    saved = sc.to_dict()
    assert list(saved["code"]) == ["name", *LDPC.Params.model_fields]
    assert list(saved["delay"]) == ["name", "mode", *Pareto.Params.model_fields]
    assert saved["code"]["decoder"] == LDPC.Params.model_fields["decoder"].default
    assert Scenario.model_validate(saved).digest() == sc.digest()


def test_scheme_parameters_are_numbers_as_everywhere_else(tmp_path):
    """A whole float is the integer a YAML file means (`1e6`), as for every other key; a boolean is not."""
    sc = load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set(["code.name=ldpc", "cluster.n_learners=8",
                                                                       "code.dv=3e0"]))
    assert sc.code.dv == 3 and isinstance(sc.code.dv, int)
    with pytest.raises(BadInput, match="not a whole number") as info:
        load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set(["code.name=replication", "code.replicas=true"]))
    assert info.value.key == "code.replicas"


def test_a_missing_parameter_says_what_it_takes_in_a_scenario(tmp_path):
    from simcode.delays.iid import ShiftedExponential

    path = write(tmp_path, "delay: {name: shifted_exponential}\n")
    with pytest.raises(BadInput) as info:
        load_scenario(path)
    field = ShiftedExponential.Params.model_fields["rate"]
    assert info.value.key == "delay.rate" and info.value.file == str(path)
    assert info.value.message == f"missing; allowed: a finite number in (0, 1e18] ({field.description})"


def _count_calls(monkeypatch, owner, name, counts, label):
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        counts[label] = counts.get(label, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)


def test_a_run_builds_its_code_and_delay_model_once(monkeypatch):
    """Validation builds both (only construction can check them) and hands them to the run: one random
    matrix drawn, one CSV read. A second run of the same scenario builds its own (a delay model has state)."""
    from simcode.codes.ldpc import LDPC
    from simcode.delays import empirical
    from simcode.sim.runner import simulate

    counts: dict[str, int] = {}
    _count_calls(monkeypatch, LDPC, "__init__", counts, "code")
    _count_calls(monkeypatch, empirical, "load_delay_column", counts, "csv")
    measured = ROOT / "tests" / "data" / "measured_delays.csv"
    sc = load_scenario(ROOT / "scenarios" / "spread3.yaml",
                       {"run.workload": "timing", "run.iterations": 3, "code.name": "ldpc", "cluster.n_learners": 6,
                        "delay.name": "empirical", "delay.file": str(measured)})
    assert sc == Scenario.model_validate(sc.to_dict())  # what it keeps for the run is no part of it
    first = simulate(sc)
    assert counts == {"code": 1, "csv": 1}
    second = simulate(sc)
    assert counts == {"code": 2, "csv": 2}
    assert first.trace.equals(second.trace)


def test_scheme_parameters_given_before_the_scheme_name_are_kept():
    """`--set code.p=0.5 --set code.name=random_sparse`: the name change drops the old scheme's
    parameters, not the new one's given in the same command."""
    overrides = parse_set(["code.p=0.5", "code.name=random_sparse", "delay.delay=0.1", "delay.name=persistent"])
    sc = load_scenario(ROOT / "scenarios" / "spread3.yaml", overrides)
    assert sc.code.name == "random_sparse" and sc.code.params()["p"] == 0.5
    assert sc.delay.name == "persistent" and sc.delay.params()["delay"] == 0.1
    with pytest.raises(BadInput, match="code.p"):
        load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set(["code.p=1.5", "code.name=random_sparse"]))


@pytest.mark.parametrize("overrides", [["cluster.n_learners=2"], ["code.name=uncoded", "cluster.n_learners=4"]])
def test_a_learner_count_the_scheme_cannot_take_names_the_cluster_key(overrides):
    with pytest.raises(BadInput) as info:
        load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set(overrides))
    assert info.value.key == "cluster.n_learners" and "allowed" in info.value.message


@pytest.mark.parametrize("how", ["scenario", "library"])
def test_a_bad_value_given_is_named_before_a_key_not_given(how):
    """pareto with alpha=-1 and no scale: the user's wrong value is what the line is about."""
    from simcode.delays import make_delay

    with pytest.raises(BadInput) as err:
        if how == "scenario":
            load_scenario(ROOT / "scenarios" / "spread3.yaml", parse_set(["delay.name=pareto", "delay.alpha=-1"]))
        else:
            make_delay("pareto", n_learners=3, alpha=-1)
    assert "alpha" in err.value.key and "out of range" in err.value.message
