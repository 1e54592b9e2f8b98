"""Rehearsal scenarios: TOML files of steps, run against a fresh emulator and real AlpacaDevices.

    schema     scenario files -> validated models; errors name file, scenario and key
    steps/     one class per step kind: its schema, description, load-time checks, run (registry)
    names      device types and member names, checked against alpyca and the emulator
    rig        a served emulator and AlpacaDevice processes on one drained queue (psutil state)
    timeline   steps placed in wall time under the scenario's deadline; Run, what steps act on
    evidence   what a run observed: queue messages, SQLite rows, the traffic log
    compare    expected against observed values, and how both are shown
    verdict    what a run found, its report, and the command that re-runs only it
    runner     one scenario: set up (rig), play (timeline), tear down -> Verdict
    plugin     pytest: scenario files as items, alpaca_emulator / alpaca_device fixtures (via rig)
    progress   what alpaca-scenarios run prints: a line per scenario, failures, a table per file
    recorded   a recording (--record) made into a scenario file
    cli        alpaca-scenarios run / list / check / new / schema / from-recording

Data flows top to bottom: a file becomes a Scenario (schema, steps), the runner sets up the rig,
plays the timeline, gathers evidence and returns a verdict; the plugin and the CLI only front it.
"""
