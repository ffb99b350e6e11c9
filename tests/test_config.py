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
    ("cluster: {n_learners: 2}\nenv: {n_agents: 3}\ncode: {name: mds}\n", {}, "code.n_learners"),
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


def test_digest_is_stable_and_sensitive():
    a, b = Scenario(), Scenario()
    assert a.digest() == b.digest()
    assert a.digest() != Scenario(seed=1).digest()


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_and_runs_on_the_timing_workload(path):
    from simcode.sim.runner import simulate

    sc = load_scenario(path, {"run.workload": "timing", "run.iterations": 5})
    assert simulate(sc).summary["iterations"] == 5


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_study_expands(path):
    from simcode.study.spec import load_study

    assert len(load_study(str(path), quick=True).runs) > 1


def test_measured_cost_needs_real_computation(tmp_path):
    with pytest.raises(BadInput) as info:
        load_scenario(write(tmp_path, "cost: {model: measured}\nrun: {workload: timing}\n"))
    assert info.value.key == "cost.model"
