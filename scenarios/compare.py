"""How observed values are compared with expected ones, and how both are shown in a verdict."""

from __future__ import annotations

import math
from typing import Any, Callable

#: The ``type`` an expectation can ask for, and how a value is tested for it.
VALUE_TYPES: dict[str, Callable[[Any], bool]] = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, (list, tuple)) or hasattr(v, "tolist"),
    "dict": lambda v: isinstance(v, dict),
    "none": lambda v: v is None,
}


#: Attributes astra's errors carry that say why a call failed (shown in verdicts, pinned by expectations).
ERROR_ATTRS = ("reason", "cause", "error_number", "error_name", "http_status", "ambiguous", "attempts")


def short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """Type, message and the cause attributes astra's errors carry."""
    parts = [f"{type(exc).__name__}: {str(exc)[:300]}"]
    attrs = []
    for name in ERROR_ATTRS:
        if hasattr(exc, name):
            value = getattr(exc, name)
            attrs.append(f"error_number=0x{value:X}" if name == "error_number" and isinstance(value, int) else f"{name}={value!r}")
    if attrs:
        parts.append("(" + ", ".join(attrs) + ")")
    return " ".join(parts)


def values_equal(expected: Any, observed: Any, tolerance: float) -> bool:
    """Equal, numbers within ``tolerance``, element by element; a bool only equals a bool."""
    if isinstance(expected, bool) or isinstance(observed, bool):
        return type(expected) is type(observed) and expected == observed
    if isinstance(expected, (int, float)) and isinstance(observed, (int, float)):
        return math.isclose(float(expected), float(observed), rel_tol=0, abs_tol=tolerance) or expected == observed
    if isinstance(expected, list) and isinstance(observed, (list, tuple)):
        return len(expected) == len(observed) and all(values_equal(a, b, tolerance) for a, b in zip(expected, observed))
    if isinstance(expected, dict) and isinstance(observed, dict):
        return expected.keys() == observed.keys() and all(values_equal(v, observed[k], tolerance) for k, v in expected.items())
    if hasattr(observed, "tolist"):  # numpy arrays from ImageArray
        return values_equal(expected, observed.tolist(), tolerance)
    return expected == observed
