"""Hypothesis strategies for property tests: random valid parameters for any registered family.

The draws come from each family's declarative domains (``Family.domains``): every parameter is drawn
from its ``typical`` range, where scipy's numerics are well behaved, narrowed by any bound that names
another parameter. Import with ``from strategies import valid_params`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from hypothesis import strategies as st

from cft.families import FAMILIES, Family, get_family
from cft.prompts import PromptSpec

# A strict bound between two parameters (b > a of a uniform, upper > lower of a truncnorm) keeps at
# least this gap, the same floor that scales have, so no family degenerates to a sliver.
MIN_GAP = 0.1


@st.composite
def valid_params(draw, family: Family | str) -> dict[str, float]:
    """Materialized parameters (prompt order, floats) that ``family.check_parameters`` accepts."""
    family = get_family(family) if isinstance(family, str) else family
    values: dict[str, float] = {}
    for param in family.domains_in_dependency_order:
        low, high = param.typical
        if isinstance(param.lower, str):
            low = max(low, values[param.lower] + (MIN_GAP if param.lower_open else 0.0))
        if isinstance(param.upper, str):
            high = min(high, values[param.upper] - (MIN_GAP if param.upper_open else 0.0))
        if low > high:
            raise ValueError(f"{family.family_id}: typical ranges leave {param.name!r} no room")
        if param.integer:
            values[param.name] = float(draw(st.integers(math.ceil(low), math.floor(high))))
        else:
            values[param.name] = draw(st.floats(low, high))
    return {name: values[name] for name in family.parameter_names}


@st.composite
def prompt_specs(draw, family_ids: Iterable[str] | None = None) -> PromptSpec:
    """A PromptSpec of a random family (from ``family_ids``, default all) with valid parameters."""
    family_id = draw(st.sampled_from(sorted(family_ids or FAMILIES)))
    return PromptSpec.from_params(family_id, draw(valid_params(family_id)))
