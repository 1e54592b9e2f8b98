"""The simulation: devices as pure state on one clock, and the images a camera takes.

Nothing here knows of HTTP, fault rules or sockets: the HTTP layer (:mod:`emulator.http`) calls
into these models, never the other way round.
"""
