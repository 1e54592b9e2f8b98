"""Every registered step kind, and ``AnyStep``: the tagged union of them the schema validates with."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

# importing a module registers its kinds; this order is the order of the JSON Schema's choices
from scenarios.steps import calls, processes, emulator, checks  # noqa: F401,I001
from scenarios.steps.base import STEP_KINDS, Step

#: One class per kind, in registration order (a class may serve several tags).
STEP_CLASSES: tuple[type[Step], ...] = tuple(dict.fromkeys(STEP_KINDS.values()))

AnyStep = Annotated[Union[STEP_CLASSES], Field(discriminator="do")]  # type: ignore[valid-type]
