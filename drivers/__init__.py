"""Serial drivers for handheld Raman spectrometers (installed as ``ramanid.drivers``)."""
