"""Reference library sources, provenance and the builder (installed as ``ramanid.spectra_library``)."""
