"""Every registered step kind, and ``AnyStep``: the tagged union of them the schema validates with.

Every module of :mod:`scenarios.steps` is imported here, in name order (importing a module
registers its kinds), so a new kind needs no line anywhere else. The order of the modules, then
of the classes in each, is the order of the kinds in error messages and in the JSON Schema.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Union

from pydantic import Field

from scenarios.steps.base import STEP_KINDS, Step

_PACKAGE = __name__.rpartition(".")[0]
for _module in sorted(info.name for info in pkgutil.iter_modules(importlib.import_module(_PACKAGE).__path__)):
    if f"{_PACKAGE}.{_module}" != __name__:
        importlib.import_module(f"{_PACKAGE}.{_module}")

#: One class per kind, in registration order (a class may serve several tags).
STEP_CLASSES: tuple[type[Step], ...] = tuple(dict.fromkeys(STEP_KINDS.values()))

AnyStep = Annotated[Union[STEP_CLASSES], Field(discriminator="do")]  # type: ignore[valid-type]
