"""astra: the device library. ``astra.alpaca_device_process.AlpacaDevice`` runs one Alpaca device per OS process."""
