"""The HTTP layer: the Falcon app that speaks Alpaca for the simulated devices.

Reads :mod:`emulator.sim`; knows nothing of fault rules or sockets (fault rules act through the
app's one hook, its Falcon middleware).
"""
