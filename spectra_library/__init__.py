"""Reference library sources with provenance, the builder and the shipped default library.

Installed as ``ramanid.spectra_library``. ``sources.json`` is the catalogue, ``modelled.json`` the
modelled entries, ``build.py`` the builder, ``data/default.h5`` the built library.
"""
