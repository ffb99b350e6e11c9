"""The scenario's `code` and `delay` sections, made from the schemes' and delay models' own `Params`.

A section is one pydantic model per registered scheme (delay model): its `name`, the tag that picks
it, beside the parameters its class declares. So the scenario's schema, its error messages and
`simcode codes show` all read one declaration, and a new scheme or delay model needs no line here.

A section builds what it describes for given sizes. Validating a scenario must build its code and
delay model (only construction can tell that k <= N, or that a random draw has full rank); with
`keep`, it keeps what it built for the run's `build`, which takes it over, so a run constructs each
exactly once (a construction draws random matrices or reads a CSV file). Handed over, not shared:
a delay model has state, and two runs of one scenario each get their own.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

from simcode.codes import CENTRALIZED, CODES, Code, make_code
from simcode.delays import DELAYS, MODES, DelayModel, make_delay
from simcode.delays.base import DelaySize

DEFAULT_CODE = "mds"
DEFAULT_DELAY = "none"


class Section(BaseModel):
    """A scheme or delay model picked by `name`, with its parameters; subclasses build it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    own_keys: ClassVar[tuple[str, ...]] = ("name",)  # the section's keys that are no parameter
    name: str
    _kept: dict[tuple, Any] = PrivateAttr(default_factory=dict)  # sizes -> the object validation built

    def __eq__(self, other: object) -> bool:
        # What validation kept for the run is no part of what the section says.
        if not isinstance(other, Section):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.__dict__.values())))

    def params(self) -> dict[str, Any]:
        """The parameters, defaults included, as make_code / make_delay take them."""
        return {key: getattr(self, key) for key in type(self).model_fields if key not in self.own_keys}

    def _construct(self, *sizes: int) -> Any:
        raise NotImplementedError

    def check_build(self, *sizes: int, keep: bool = False) -> None:
        """Build for these sizes (BadInput for a value that construction refuses); with `keep`, keep
        the object for the next `build` of the same sizes."""
        built = self._construct(*sizes)
        self._kept = {sizes: built} if keep else {}

    def build(self, *sizes: int) -> Any:
        """The object for these sizes: the one `check_build` kept (handed over once), else a new one."""
        if sizes in self._kept:
            return self._kept.pop(sizes)
        return self._construct(*sizes)


class CodeSection(Section):
    def _construct(self, n_agents: int, n_learners: int, seed: int) -> Code | None:
        return make_code(self.name, n_agents=n_agents, n_learners=n_learners, seed=seed, **self.params())


class CentralizedSection(CodeSection):
    """No scheme: the controller computes every update itself (no code to build)."""

    name: Literal[CENTRALIZED] = CENTRALIZED  # type: ignore[valid-type]

    def _construct(self, n_agents: int, n_learners: int, seed: int) -> None:
        return None


class DelaySection(Section):
    own_keys: ClassVar[tuple[str, ...]] = ("name", "mode")
    mode: Literal[MODES] = Field("add", description=DelaySize.model_fields["mode"].description)  # type: ignore[valid-type]

    def _construct(self, n_learners: int) -> DelayModel:
        return make_delay(self.name, n_learners=n_learners, mode=self.mode, **self.params())


def _members(registry: dict[str, Any], base: type[Section]) -> dict[str, type[Section]]:
    """One section model per registered class: its Params' fields after the section's own keys."""
    return {name: create_model(f"{cls.__name__}Section", __base__=(cls.Params, base), __module__=__name__,
                               __doc__=cls.__doc__, name=(Literal[name], name))
            for name, cls in registry.items()}


CODE_SECTIONS: dict[str, type[Section]] = {**_members(CODES, CodeSection), CENTRALIZED: CentralizedSection}
DELAY_SECTIONS: dict[str, type[Section]] = _members(DELAYS, DelaySection)
# The types of the scenario's `code` and `delay` keys: pydantic picks the model by `name`.
CodeConfig = Annotated[Union[tuple(CODE_SECTIONS.values())], Field(discriminator="name")]  # noqa: UP007
DelayConfig = Annotated[Union[tuple(DELAY_SECTIONS.values())], Field(discriminator="name")]  # noqa: UP007
DEFAULTS = {"code": DEFAULT_CODE, "delay": DEFAULT_DELAY}
KINDS = {"code": ("scheme", CODE_SECTIONS), "delay": ("delay model", DELAY_SECTIONS)}


def default_code() -> Section:
    return CODE_SECTIONS[DEFAULT_CODE]()


def default_delay() -> Section:
    return DELAY_SECTIONS[DEFAULT_DELAY]()


def with_name(section: str, value: Any) -> Any:
    """A `code` or `delay` mapping without `name` names the default (`code: {}` is mds)."""
    if isinstance(value, dict) and "name" not in value:
        return {"name": DEFAULTS[section], **value}
    return value


def unknown_name(section: str, name: Any) -> str:
    """The message for a `code.name` or `delay.name` that names nothing registered."""
    kind, members = KINDS[section]
    return f"unknown {kind} {name!r}; allowed: {', '.join(sorted(members))}"
