"""Every kind of scenario step: one pydantic class each, registered by the module that defines it.

    base       the registry (step_kind, STEP_KINDS), Step/Check/DeviceStep/Counted, and wait
    calls      get, call, set, force_poll, await
    processes  start_poll, stop_poll, pause_polls, resume_polls, kill, hang, unhang, stop
    emulator   fault, remove_fault, clear_faults, clear_traffic, reset_emulator, set_state
    checks     expect_traffic, expect_poll, expect_queue, expect_sqlite, expect_state, expect_process
    kinds      imports every module of this package and builds AnyStep, the union the schema uses

Adding a step kind is one module: put ``scenarios/steps/<topic>.py`` here (or a class into one of
the modules above) with a class such as::

    from typing import Literal
    from scenarios.steps.base import Check, DeviceStep, step_kind

    @step_kind
    class StarCountCheck(DeviceStep, Check):
        '''What the editor shows for this kind (the JSON Schema carries the docstring).'''

        do: Literal["expect_stars"]          # the tag(s) a scenario writes as ``do = ...``
        min: int                             # its fields are its schema

        def describe(self) -> str: ...       # one line of the timeline
        def check_refs(self, scope) -> None: ...   # optional: load-time checks against the scenario
        def evaluate(self, run): ...         # a Check: (holds, expected, observed)
        # an action implements run(self, run, where) instead; see scenarios.steps.base

:mod:`scenarios.steps.kinds` finds the module by itself; nothing else changes. Then regenerate
the published schema (``alpaca-scenarios schema -o scenarios/scenario.schema.json``; a test
compares it) and add an example of the kind to ``tests/test_scenarios_steps.py``'s EVERY_KIND.
"""
