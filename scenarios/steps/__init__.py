"""Every kind of scenario step, registered by the modules that define them.

    kinds      every kind imported, and the union of them
    base       the registry, Step/Check/DeviceStep, wait
    calls      get, call, set, force_poll, await
    processes  start_poll, stop_poll, pause_polls, resume_polls, kill, hang, unhang, stop
    emulator   fault, remove_fault, clear_faults, clear_traffic, reset_emulator, set_state
    checks     expect_traffic, expect_poll, expect_queue, expect_sqlite, expect_state, expect_process

``scenarios.steps.kinds`` imports them all and builds ``AnyStep``, the tagged union (on ``do``)
the scenario schema validates steps with.
"""
