"""Serving: waitress in a background thread, the socket-level fault stages, the traffic log, discovery.

The top of the stack: it serves the app of :mod:`emulator.http` and carries out the stages of
:mod:`emulator.faults` that need the socket.
"""
