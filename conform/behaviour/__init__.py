"""Device-behaviour checks through alpyca: the common ones, then one module per device type."""

from __future__ import annotations

import importlib
from typing import Iterator

from conform.behaviour import common
from conform.checks import Check, family
from conform.context import DeviceContext


@family("behaviour")
def behaviour_checks(ctx: DeviceContext) -> Iterator[Check]:
    yield from common.checks(ctx)
    yield from importlib.import_module(f"conform.behaviour.{ctx.device_type}").checks(ctx)
