"""The ASCOM errors a device model raises.

``AscomError`` and its subclasses become HTTP 200 responses with a non-zero ErrorNumber
(reference section 2.8), in the encoding the request asked for: the HTTP layer maps them, as it
maps a fault rule's ``ascom_error``.
"""

from __future__ import annotations


class AscomError(Exception):
    """An ASCOM device error, answered as HTTP 200 with ErrorNumber/ErrorMessage."""

    number = 0x500
    name = "DriverException"

    def __init__(self, message: str, number: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if number is not None:
            self.number = number


class NotImplementedErr(AscomError):
    number = 0x400
    name = "NotImplementedException"


class InvalidValue(AscomError):
    number = 0x401
    name = "InvalidValueException"


class ValueNotSet(AscomError):
    number = 0x402
    name = "ValueNotSetException"


class NotConnected(AscomError):
    number = 0x407
    name = "NotConnectedException"


class Parked(AscomError):
    number = 0x408
    name = "ParkedException"


class Slaved(AscomError):
    number = 0x409
    name = "SlavedException"


class InvalidOperation(AscomError):
    number = 0x40B
    name = "InvalidOperationException"


class ActionNotImplemented(AscomError):
    number = 0x40C
    name = "ActionNotImplementedException"


class OperationCancelled(AscomError):
    number = 0x40E
    name = "OperationCancelledException"


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise InvalidValue naming the member and the valid range."""
    if not (low <= value <= high):
        raise InvalidValue(f"{name} set - '{value}' is an invalid value. The valid range is: {low} to {high}.")
