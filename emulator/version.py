"""The emulator's version: what the management API and DriverVersion report."""

__version__ = "0.1.0"
