"""One prompt spec (a family with materialized parameters), its distribution id and its prompt text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cft.families import Family, get_family

PROMPT_TEMPLATE = (
    "Generate exactly ONE random number from a {display_name} distribution with parameters {params}. "
    "Output ONLY the number."
)


def render_prompt(family: Family, params: Mapping[str, float]) -> str:
    """The paper's single-sample prompt; values are printed with repr(float), e.g. 'n=25.0, p=0.5'."""
    listed = ", ".join(f"{name}={float(params[name])!r}" for name in family.parameter_names)
    return PROMPT_TEMPLATE.format(display_name=family.display_name, params=listed)


def _slug(value: float) -> str:
    # Integers print without decimals, others with at most 6; '-' and '.' would be awkward in file names.
    text = str(int(value)) if value.is_integer() else f"{value:.6f}".rstrip("0").rstrip(".")
    return text.replace("-", "m").replace(".", "p")


@dataclass(frozen=True)
class PromptSpec:
    """A family id with materialized parameters, in prompt order, as raw float64 values."""

    family_id: str
    params: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        family = get_family(self.family_id)
        family.check_parameters(dict(self.params))
        names = tuple(name for name, _ in self.params)
        if names != family.parameter_names:
            raise ValueError(
                f"{self.family_id}: parameters must be given once each in prompt order "
                f"({', '.join(family.parameter_names)}), got ({', '.join(names)})"
            )
        # numpy scalars would print differently in the prompt; keep plain Python floats.
        object.__setattr__(self, "params", tuple((name, float(value)) for name, value in self.params))

    @classmethod
    def from_params(cls, family_id: str, params: Mapping[str, float]) -> PromptSpec:
        """A spec from materialized parameters given in any order."""
        family = get_family(family_id)
        family.check_parameters(params)
        return cls(family_id, tuple((name, params[name]) for name in family.parameter_names))

    @classmethod
    def from_grid(cls, family: Family | str, grid_params: Mapping[str, float]) -> PromptSpec:
        """A spec from one grid point, materialized by the family's transform."""
        family = get_family(family) if isinstance(family, str) else family
        return cls.from_params(family.family_id, family.materialize(grid_params))

    @property
    def family(self) -> Family:
        return get_family(self.family_id)

    @property
    def param_dict(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def distribution_id(self) -> str:
        """``family_id`` then ``_<name>_<slug>`` per parameter, e.g. 'uniform_a_m5_b_m3p6'."""
        return self.family_id + "".join(f"_{name}_{_slug(value)}" for name, value in self.params)

    @property
    def prompt(self) -> str:
        return render_prompt(self.family, self.param_dict)

    def to_dict(self) -> dict:
        """JSON-safe form; JSON keeps float reprs, so from_dict(json round trip) is exact."""
        return {"family_id": self.family_id, "params": self.param_dict}

    @classmethod
    def from_dict(cls, record: Mapping) -> PromptSpec:
        """Inverse of to_dict; other keys of ``record`` (a stored prompt text, say) are ignored."""
        return cls.from_params(record["family_id"], record["params"])
