"""The reference library: entries with provenance, their spectra, integrity and signatures.

This module is the only code that knows the library file layout. Everything else uses
:func:`load_library`, :func:`build_library` and the :class:`Library` object.

File layout (HDF5 via h5py, format version 1)
---------------------------------------------
* a 512-byte HDF5 *user block* at the start of the file holding the line ``RAMANID-LIBRARY``
  and a JSON object ``{"file_sha256": ..., "format_version": 1, "library_sha256": ...}`` padded
  with zero bytes; ``file_sha256`` is the SHA-256 of every byte after the user block, so any
  changed byte anywhere in the file is detected on load;
* root attributes: ``format`` (``"ramanid-library"``), ``format_version``, ``header`` (JSON:
  ``name``, ``description``, ``library_version``, ``parent_version``, ``created``),
  ``recipe`` (JSON, :meth:`ramanid.preprocess.Recipe.to_dict`), ``changelog`` (JSON list),
  ``library_sha256``;
* ``/axis`` (float64, the library axis, cm-1) and ``/matrix`` (float32, one processed spectrum
  per entry, every status, in ``/entry_ids`` order);
* ``/entries/<id>``: attributes ``metadata`` (JSON of the :class:`Entry` fields) and
  ``entry_sha256``; datasets ``raw_axis`` (float64) and ``raw_values`` (float64);
* ``/signature`` (optional): attributes ``algorithm`` (``Ed25519``), ``public_key`` (hex),
  ``key_id``, ``signature`` (hex), ``signed_by``, ``signed_at``.

Hashes
------
* entry id: first 16 hex digits of SHA-256 over the entry name, provenance kind and the raw
  spectrum (axis and values as little-endian float64): stable while the spectrum is unchanged;
* entry hash: SHA-256 over the canonical JSON of all metadata, the raw spectrum and the
  processed row (float32);
* library hash (:attr:`Library.sha256`): SHA-256 over the canonical JSON of header, recipe and
  changelog, the library axis and every entry hash in order. It does not depend on HDF5 byte
  layout, so a rebuilt file can be compared with a shipped one. A signature signs this hash.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ramanid.errors import LibraryError, UsageError
from ramanid.hazard import HAZARD_LEVELS, is_alarm

FORMAT_NAME = "ramanid-library"
FORMAT_VERSION = 1
USERBLOCK_SIZE = 512
USERBLOCK_MAGIC = b"RAMANID-LIBRARY\n"
PROVENANCE_KINDS = ("measured", "modelled", "in-silico")
STATUSES = ("pending", "approved", "retired")
#: Environment variable naming the library to load when no path is given.
LIBRARY_ENV = "RAMANID_LIBRARY"

# -- recipe ------------------------------------------------------------------------------------
def recipe_from_dict(d: Mapping[str, Any]) -> Any:
    """Recipe object (``ramanid.preprocess.Recipe``) for a library's recipe dict."""
    from ramanid.preprocess import Recipe

    return Recipe.from_dict(dict(d))


def default_recipe() -> Any:
    """The engine's default recipe (``ramanid.preprocess.default_recipe()``)."""
    from ramanid.preprocess import default_recipe as _engine_default

    return _engine_default()


def _as_recipe(recipe: Any) -> Any:
    if recipe is None:
        return default_recipe()
    if isinstance(recipe, Mapping):
        return recipe_from_dict(recipe)
    return recipe


# -- entries -----------------------------------------------------------------------------------
@dataclass
class Entry:
    """One reference spectrum with its identity, hazard and provenance.

    ``substance`` is a canonical key shared by entries of the same substance (for example
    acetaminophen measured on two instruments: two entries, one substance).
    """

    id: str
    name: str
    substance: str = ""
    synonyms: list[str] = field(default_factory=list)
    cas: str | None = None
    substance_class: str = "unknown"
    hazard_level: str = "none"
    handling: str = ""
    provenance_kind: str = "measured"
    source: str = ""
    licence: str = ""
    references: list[str] = field(default_factory=list)
    instrument: str | None = None
    laser_nm: float | None = None
    acquisition: dict[str, Any] = field(default_factory=dict)
    added_by: str | None = None
    added_at: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    status: str = "pending"
    notes: str = ""

    @property
    def hazardous(self) -> bool:
        """True for hazard levels ``high`` and ``extreme``."""
        return is_alarm(self.hazard_level)

    @property
    def measured(self) -> bool:
        """True when the spectrum was measured on a real sample."""
        return self.provenance_kind == "measured"

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entry:
        """Inverse of :meth:`to_dict` (unknown keys are kept in ``acquisition``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        if extra:
            known["acquisition"] = {**dict(known.get("acquisition") or {}), **extra}
        return cls(**known)


ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(Entry))


@dataclass
class LibrarySource:
    """A spectrum plus metadata, the input of :func:`build_library` and :meth:`Library.add`.

    ``meta`` holds any :class:`Entry` field except ``id`` (computed from the content).
    """

    axis: np.ndarray
    values: np.ndarray
    meta: dict[str, Any]

    def __init__(self, axis: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                 name: str | None = None, **meta: Any) -> None:
        self.axis = np.asarray(axis, dtype=np.float64)
        self.values = np.asarray(values, dtype=np.float64)
        if name is not None:
            meta["name"] = name
        self.meta = meta


# -- helpers -----------------------------------------------------------------------------------
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON used for hashing (sorted keys, no spaces, no NaN)."""
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _f64(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f8").tobytes()


def entry_id_for(name: str, provenance_kind: str, axis: np.ndarray, values: np.ndarray) -> str:
    """Stable content id of an entry (16 hex digits)."""
    h = hashlib.sha256(b"ramanid-entry-v1\x00")
    h.update(name.encode("utf-8") + b"\x00" + provenance_kind.encode("utf-8") + b"\x00")
    h.update(_f64(axis))
    h.update(_f64(values))
    return h.hexdigest()[:16]


def entry_hash(entry: Entry, axis: np.ndarray, values: np.ndarray, processed: np.ndarray) -> str:
    """SHA-256 of an entry's metadata, raw spectrum and processed row."""
    h = hashlib.sha256(b"ramanid-entry-content-v1\x00")
    h.update(canonical_json(entry.to_dict()).encode("utf-8") + b"\x00")
    h.update(_f64(axis))
    h.update(_f64(values))
    h.update(np.ascontiguousarray(processed, dtype="<f4").tobytes())
    return h.hexdigest()


def slugify(text: str) -> str:
    return "-".join("".join(c.lower() if c.isalnum() else " " for c in text).split())


def _validate_meta(meta: Mapping[str, Any], source: str | None = None) -> None:
    if not meta.get("name"):
        raise UsageError("an entry needs a name", source=source, hint="pass --name")
    if meta.get("hazard_level", "none") not in HAZARD_LEVELS:
        raise UsageError(f"hazard level {meta.get('hazard_level')!r} is not one of "
                         f"{', '.join(HAZARD_LEVELS)}", source=source)
    if meta.get("provenance_kind", "measured") not in PROVENANCE_KINDS:
        raise UsageError(f"provenance kind {meta.get('provenance_kind')!r} is not one of "
                         f"{', '.join(PROVENANCE_KINDS)}", source=source)
    if meta.get("status", "pending") not in STATUSES:
        raise UsageError(f"status {meta.get('status')!r} is not one of {', '.join(STATUSES)}",
                         source=source)
    unknown = set(meta) - set(ENTRY_FIELDS)
    if unknown:
        raise UsageError(f"unknown entry field(s): {', '.join(sorted(unknown))}", source=source)


def _bump(version: str) -> str:
    parts = version.split(".")
    try:
        nums = [int(p) for p in parts[:3]] + [0] * (3 - len(parts[:3]))
    except ValueError:
        return version + ".1"
    return f"{nums[0]}.{nums[1] + 1}.0"


# -- the library -------------------------------------------------------------------------------
class Library:
    """A reference library held in memory.

    Use :func:`load_library` to read a file, :func:`build_library` to make one from sources.

    Attributes
    ----------
    path : Path or None
        File it was loaded from (``None`` for in-memory libraries).
    name, description, version, parent_version, created : str
        Header fields.
    recipe : dict
        The preprocessing recipe (``Recipe.to_dict()``) that made :attr:`matrix`.
    axis : numpy.ndarray
        Library axis (float64, cm-1).
    all_entries : list of Entry
        Every entry, any status, in file order.
    changelog : list of dict
        ``{"version", "at", "by", "action", "entry_id", "note"}`` per change.
    signature : dict or None
        ``algorithm``, ``public_key``, ``key_id``, ``signature``, ``signed_by``, ``signed_at``.
    signature_status : str
        ``unsigned``, ``valid-trusted``, ``valid-untrusted`` (valid but no trusted key
        configured), or ``invalid``/``untrusted`` when loaded with ``allow_tampered``.
    integrity_problems : list of str
        Empty unless loaded with ``allow_tampered=True`` from a damaged or altered file.
    """

    def __init__(self, *, recipe: Mapping[str, Any], axis: np.ndarray, entries: list[Entry],
                 raw: Mapping[str, tuple[np.ndarray, np.ndarray]], processed: np.ndarray,
                 version: str = "0.1.0", parent_version: str | None = None,
                 created: str | None = None, name: str = "custom", description: str = "",
                 changelog: list[dict[str, Any]] | None = None,
                 path: Path | None = None) -> None:
        self.recipe = _jsonable(dict(recipe))
        self.axis = np.asarray(axis, dtype=np.float64)
        self.all_entries = list(entries)
        self._raw = {k: (np.asarray(a, np.float64), np.asarray(v, np.float64))
                     for k, (a, v) in raw.items()}
        self._processed = np.asarray(processed, dtype=np.float32).reshape(
            len(self.all_entries), self.axis.size)
        self.version = version
        self.parent_version = parent_version
        self.created = created or _now()
        self.name = name
        self.description = description
        self.changelog = list(changelog or [])
        self.path = path
        self.signature: dict[str, str] | None = None
        self.signature_status = "unsigned"
        self.integrity_problems: list[str] = []
        self._cache: dict[str, Any] = {}
        self._bumped = False

    # -- views the engine uses ----------------------------------------------------------------
    def _usable_index(self) -> np.ndarray:
        if "usable" not in self._cache:
            self._cache["usable"] = np.array(
                [i for i, e in enumerate(self.all_entries) if e.status == "approved"], dtype=int)
        return self._cache["usable"]

    @property
    def entries(self) -> list[Entry]:
        """Approved entries (the usable ones); row ``i`` of :attr:`matrix` is ``entries[i]``."""
        return [self.all_entries[i] for i in self._usable_index()]

    @property
    def matrix(self) -> np.ndarray:
        """float32 ``N x M``: processed spectra of the approved entries (read-only view)."""
        if "matrix" not in self._cache:
            m = np.ascontiguousarray(self._processed[self._usable_index()])
            m.setflags(write=False)
            self._cache["matrix"] = m
        return self._cache["matrix"]

    @property
    def sha256(self) -> str:
        """Content hash of the whole library (independent of the HDF5 byte layout)."""
        if "sha256" not in self._cache:
            self._cache["sha256"] = self._content_hash()
        return self._cache["sha256"]

    @property
    def format_version(self) -> int:
        """Version of the file layout this object is written in."""
        return FORMAT_VERSION

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (f"Library(name={self.name!r}, version={self.version!r}, "
                f"entries={len(self.entries)}/{len(self.all_entries)}, "
                f"sha256={self.sha256[:12]}...)")

    def processed(self, entry_id: str) -> np.ndarray:
        """Processed row (on :attr:`axis`) of any entry, whatever its status."""
        return self._processed[self._index(entry_id)]

    def processed_all(self) -> np.ndarray:
        """float32 processed rows of every entry (``all_entries`` order), read-only."""
        view = self._processed.view()
        view.setflags(write=False)
        return view

    def raw(self, entry_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The entry's raw spectrum: ``(axis, values)`` as stored (copies)."""
        e = self.entry(entry_id)
        a, v = self._raw[e.id]
        return a.copy(), v.copy()

    def raw_batch(self, entry_ids: Iterable[str] | None = None) -> list[Any]:
        """Raw spectra as :class:`~ramanid.spectrum.SpectrumBatch` objects (one per entry)."""
        from ramanid.spectrum import SpectrumBatch

        ids = [e.id for e in self.entries] if entry_ids is None else list(entry_ids)
        out = []
        for i in ids:
            e = self.entry(i)
            a, v = self._raw[e.id]
            out.append(SpectrumBatch.single(a, v, source=f"library:{e.id}", name=e.name,
                                            laser_nm=e.laser_nm,
                                            device_serial=e.acquisition.get("device_serial")))
        return out

    def _index(self, entry_id: str) -> int:
        if "index" not in self._cache:
            self._cache["index"] = {e.id: i for i, e in enumerate(self.all_entries)}
        try:
            return self._cache["index"][entry_id]
        except KeyError:
            return self._cache["index"][self.entry(entry_id).id]

    def entry(self, key: str) -> Entry:
        """Find an entry by id, name, synonym, substance key or unique id prefix (>= 4 chars).

        Raises
        ------
        UsageError
            When nothing or more than one entry matches.
        """
        key_s = str(key).strip()
        for e in self.all_entries:
            if e.id == key_s:
                return e
        low = key_s.lower()
        hits = [e for e in self.all_entries if e.name.lower() == low]
        if not hits:
            hits = [e for e in self.all_entries
                    if low in (s.lower() for s in e.synonyms) or e.substance == slugify(key_s)]
        if not hits:
            hits = [e for e in self.all_entries if len(low) >= 4 and e.id.startswith(low)]
        if len(hits) > 1:
            active = [e for e in hits if e.status != "retired"]
            hits = active if len(active) == 1 else hits
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise UsageError(f"no entry {key_s!r} in the library", source=self.path,
                             hint="see `ramanid library list`")
        listing = ", ".join(f"{e.id} ({e.name}, {e.instrument or e.provenance_kind})"
                            for e in hits)
        raise UsageError(f"{key_s!r} matches {len(hits)} entries: {listing}", source=self.path,
                         hint="give the entry id")

    def hazardous_entries(self) -> list[Entry]:
        """Approved entries with hazard level high or extreme."""
        return [e for e in self.entries if e.hazardous]

    def unmeasured_hazard_classes(self) -> list[str]:
        """Hazardous substance classes with no approved *measured* entry.

        For such classes a negative result does not rule the class out (for the default library:
        the fentanyl-class opioids, which are modelled).
        """
        classes = {e.substance_class for e in self.entries if e.hazardous}
        measured = {e.substance_class for e in self.entries if e.hazardous and e.measured}
        return sorted(classes - measured)

    def entries_by(self, **criteria: Any) -> list[Entry]:
        """All entries whose fields equal the given values."""
        return [e for e in self.all_entries
                if all(getattr(e, k) == v for k, v in criteria.items())]

    def select(self, predicate: Callable[[Entry], bool], *, name: str | None = None) -> Library:
        """A new in-memory library holding the entries for which ``predicate`` is true.

        The processed rows are kept (same recipe and axis); the changelog records the selection.
        """
        keep = [i for i, e in enumerate(self.all_entries) if predicate(e)]
        entries = [dataclasses.replace(self.all_entries[i]) for i in keep]
        lib = Library(recipe=self.recipe, axis=self.axis, entries=entries,
                      raw={e.id: self._raw[e.id] for e in entries},
                      processed=self._processed[keep], version=self.version + "+subset",
                      parent_version=self.version, created=self.created,
                      name=name or f"{self.name} (subset)", description=self.description,
                      changelog=[*self.changelog, {"version": self.version + "+subset",
                                                   "at": self.created, "by": None,
                                                   "action": "select", "entry_id": None,
                                                   "note": f"{len(entries)} entries selected"}])
        return lib

    # -- changes (each recorded in the change log) --------------------------------------------
    def _touch(self, action: str, by: str | None, entry_id: str | None, note: str = "",
               at: str | None = None) -> None:
        if not self._bumped:
            self.parent_version = self.version
            self.version = _bump(self.version)
            self._bumped = True
        self.created = at or _now()
        self.changelog.append({"version": self.version, "at": self.created, "by": by,
                               "action": action, "entry_id": entry_id, "note": note})
        self.signature = None
        self.signature_status = "unsigned"
        self._cache.clear()

    def add(self, source: LibrarySource, *, by: str, status: str = "pending",
            at: str | None = None) -> Entry:
        """Add a spectrum as a new entry (pending by default); returns the entry."""
        entry, row = _make_entries([source], self.recipe, by=by, status=status, at=at,
                                   axis=self.axis)
        e = entry[0]
        if any(x.id == e.id for x in self.all_entries):
            raise LibraryError(f"entry {e.id} ({e.name}) is already in the library",
                               source=self.path, hint="nothing to add")
        self.all_entries.append(e)
        self._raw[e.id] = (source.axis, source.values)
        self._processed = np.vstack([self._processed, row])
        self._touch("add", by, e.id, f"{e.name} ({e.provenance_kind}, {e.status})", at)
        return e

    def approve(self, key: str, *, by: str, at: str | None = None, note: str = "") -> Entry:
        """Make a pending (or retired) entry usable, recording who approved it and when."""
        e = self.entry(key)
        if not by:
            raise UsageError("approval needs the approver's name", hint="pass --by NAME")
        if e.status == "approved":
            raise UsageError(f"entry {e.id} ({e.name}) is approved already", source=self.path)
        at = at or _now()
        e.status, e.approved_by, e.approved_at = "approved", by, at
        self._touch("approve", by, e.id, f"{e.name} {note}".strip(), at)
        return e

    def retire(self, key: str, *, by: str | None = None, reason: str = "",
               at: str | None = None) -> Entry:
        """Take an entry out of use (it stays in the file for the record)."""
        e = self.entry(key)
        if e.status == "retired":
            raise UsageError(f"entry {e.id} ({e.name}) is retired already", source=self.path)
        e.status = "retired"
        if reason:
            e.notes = (e.notes + "\n" if e.notes else "") + f"retired: {reason}"
        self._touch("retire", by, e.id, f"{e.name}: {reason}".rstrip(": "), at)
        return e

    # -- integrity ----------------------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "library_version": self.version, "parent_version": self.parent_version,
                "created": self.created}

    def entry_hashes(self) -> list[str]:
        """Content hash of every entry, ``all_entries`` order."""
        return [entry_hash(e, *self._raw[e.id], self._processed[i])
                for i, e in enumerate(self.all_entries)]

    def _content_hash(self, entry_hashes: Sequence[str] | None = None) -> str:
        h = hashlib.sha256(b"ramanid-library-content-v1\x00")
        h.update(canonical_json({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                 "header": self._header(), "recipe": self.recipe,
                                 "changelog": self.changelog}).encode("utf-8") + b"\x00")
        h.update(_f64(self.axis))
        for eh in (self.entry_hashes() if entry_hashes is None else entry_hashes):
            h.update(eh.encode("ascii"))
        return h.hexdigest()

    def sign(self, private_key: Any, *, by: str | None = None) -> dict[str, str]:
        """Sign the library hash with an Ed25519 private key (object or PEM path)."""
        from ramanid import signing

        if not hasattr(private_key, "sign"):
            private_key = signing.load_private_key(private_key)
        pub = signing.public_raw_of(private_key)
        sig = signing.sign_digest(private_key, self.sha256)
        self.signature = {"algorithm": signing.SIGNATURE_ALGORITHM, "public_key": pub.hex(),
                          "key_id": signing.key_id(pub), "signature": sig.hex(),
                          "signed_by": by or "", "signed_at": _now(),
                          "library_sha256": self.sha256}
        self.signature_status = "valid-untrusted"
        return self.signature

    def check_signature(self, trusted: Sequence[bytes]) -> str:
        """Return the signature status against raw trusted public keys (see class docs)."""
        from ramanid import signing

        if not self.signature:
            return "unsigned"
        try:
            pub = bytes.fromhex(self.signature["public_key"])
            sig = bytes.fromhex(self.signature["signature"])
        except (KeyError, ValueError):
            return "invalid"
        if self.signature.get("algorithm") != signing.SIGNATURE_ALGORITHM:
            return "invalid"
        if not signing.verify_digest(pub, self.sha256, sig):
            return "invalid"
        if not trusted:
            return "valid-untrusted"
        return "valid-trusted" if pub in set(trusted) else "untrusted"

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the library atomically to ``path`` (see the module docs for the layout)."""
        path = Path(path)
        _write_file(self, path)
        self.path = path
        self._bumped = False
        return path


# -- building ------------------------------------------------------------------------------------
def _make_entries(sources: Sequence[LibrarySource], recipe: Any, *, by: str | None,
                  status: str | None, at: str | None,
                  axis: np.ndarray | None = None) -> tuple[list[Entry], np.ndarray]:
    recipe_obj = _as_recipe(recipe)
    entries: list[Entry] = []
    for s in sources:
        meta = dict(s.meta)
        _validate_meta(meta, meta.get("source"))
        if s.axis.ndim != 1 or s.axis.shape != s.values.shape or s.axis.size < 2:
            raise UsageError(f"entry {meta['name']!r}: axis and values must be 1-D of equal "
                             "length")
        if np.any(np.diff(s.axis) <= 0) or not np.all(np.isfinite(s.values)):
            raise UsageError(f"entry {meta['name']!r}: axis must increase and values be finite")
        meta.setdefault("substance", slugify(meta["name"]))
        meta.setdefault("provenance_kind", "measured")
        if status is not None and "status" not in meta:
            meta["status"] = status
        meta.setdefault("added_by", by)
        meta.setdefault("added_at", at)
        if meta.get("status") == "approved":
            meta.setdefault("approved_by", by)
            meta.setdefault("approved_at", at)
        eid = entry_id_for(meta["name"], meta["provenance_kind"], s.axis, s.values)
        entries.append(Entry(id=eid, **meta))
    rows = _process(recipe_obj, [(s.axis, s.values) for s in sources], axis)
    return entries, rows


def _process(recipe_obj: Any, spectra: Sequence[tuple[np.ndarray, np.ndarray]],
             expect_axis: np.ndarray | None = None) -> np.ndarray:
    """Process raw spectra with the recipe, grouping those that share an axis (vectorised)."""
    from ramanid.spectrum import SpectrumBatch

    groups: dict[bytes, list[int]] = {}
    for i, (a, _) in enumerate(spectra):
        groups.setdefault(hashlib.sha1(_f64(a)).digest(), []).append(i)
    out: np.ndarray | None = None
    for idx in groups.values():
        a = spectra[idx[0]][0]
        batch = SpectrumBatch(a, np.vstack([spectra[i][1] for i in idx]))
        result = recipe_obj.process(batch)
        X = np.asarray(result.X, dtype=np.float32)
        if out is None:
            out = np.zeros((len(spectra), X.shape[1]), dtype=np.float32)
            ax = np.asarray(result.axis, dtype=np.float64)
            if expect_axis is not None and (ax.shape != expect_axis.shape
                                            or not np.allclose(ax, expect_axis)):
                raise LibraryError("the recipe's axis differs from the library axis",
                                   hint="rebuild the library with its recipe")
        out[idx] = X
    if out is None:
        n = 0 if expect_axis is None else expect_axis.size
        out = np.zeros((0, n), dtype=np.float32)
    return out


def build_library(sources: Sequence[LibrarySource], recipe: Any = None, *,
                  version: str = "0.1.0", created: str | None = None, name: str = "custom",
                  description: str = "", by: str | None = "ramanid build",
                  status: str = "approved", parent_version: str | None = None,
                  changelog: list[dict[str, Any]] | None = None,
                  sort: bool = True) -> Library:
    """Build a library in memory from spectra with metadata (no file is written).

    Parameters
    ----------
    sources
        :class:`LibrarySource` items (axis, values, metadata).
    recipe
        A recipe object, a recipe dict, or ``None`` for the engine's default recipe.
    version, created, name, description, parent_version
        Header fields; pass a fixed ``created`` for a reproducible build.
    by
        Recorded as ``added_by`` (and ``approved_by`` for approved entries).
    status
        Status of entries whose metadata does not set one (``approved`` by default so that a
        test library is usable at once).
    changelog
        Initial change log; default one ``build`` record.
    sort
        Order entries by (name, id) before processing, so that the result (including the
        last bits of the processed rows) does not depend on the input order.

    Returns
    -------
    Library
    """
    created = created or _now()
    recipe_obj = _as_recipe(recipe)
    sources = list(sources)
    if sort:  # canonical order before processing: the result does not depend on input order
        keys = [(str(s.meta.get("name", "")).lower(),
                 entry_id_for(str(s.meta.get("name", "")),
                              str(s.meta.get("provenance_kind", "measured")), s.axis, s.values))
                for s in sources]
        sources = [sources[i] for i in sorted(range(len(sources)), key=keys.__getitem__)]
    entries, rows = _make_entries(sources, recipe_obj, by=by, status=status, at=created)
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise UsageError(f"duplicate entries (same name and spectrum): {', '.join(dup)}")
    if sources:
        axis = np.asarray(_process_axis(recipe_obj, sources[0]), dtype=np.float64)
    else:
        axis = np.asarray(getattr(recipe_obj, "axis", np.zeros(0)), dtype=np.float64)
    log = changelog if changelog is not None else [
        {"version": version, "at": created, "by": by, "action": "build", "entry_id": None,
         "note": f"built from {len(entries)} sources"}]
    return Library(recipe=recipe_obj.to_dict(), axis=axis, entries=entries,
                   raw={e.id: (s.axis, s.values) for e, s in zip(entries, sources, strict=True)},
                   processed=rows, version=version,
                   parent_version=parent_version, created=created, name=name,
                   description=description, changelog=log)


def _process_axis(recipe_obj: Any, source: LibrarySource) -> np.ndarray:
    from ramanid.spectrum import SpectrumBatch

    return recipe_obj.process(SpectrumBatch.single(source.axis, source.values)).axis


def library_from_batch(batch: Any, names: Sequence[str] | None = None, recipe: Any = None,
                       **common: Any) -> Library:
    """Convenience for tests: one entry per row of a SpectrumBatch.

    ``names`` default to each row's ``name`` metadata; ``common`` metadata (e.g.
    ``substance_class``) applies to every entry; ``created`` is fixed for reproducibility.
    """
    names = list(names) if names is not None else [
        str(m.get("name") or f"spectrum {i}") for i, m in enumerate(batch.meta)]
    srcs = [LibrarySource(batch.axis, batch.intensity[i], name=n, **common)
            for i, n in enumerate(names)]
    return build_library(srcs, recipe, created="2026-01-01T00:00:00Z")


Library.from_batch = staticmethod(library_from_batch)  # type: ignore[attr-defined]
Library.from_sources = staticmethod(build_library)  # type: ignore[attr-defined]


# -- file I/O ------------------------------------------------------------------------------------
def default_library_path() -> Path:
    """Path of the library to use: ``$RAMANID_LIBRARY`` if set, else the bundled default."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env).expanduser()
    from importlib import resources

    return Path(str(resources.files("ramanid.spectra_library") / "data" / "default.h5"))


def _userblock(file_sha: str, library_sha: str) -> bytes:
    body = USERBLOCK_MAGIC + canonical_json({"file_sha256": file_sha,
                                             "format_version": FORMAT_VERSION,
                                             "library_sha256": library_sha}).encode() + b"\n"
    return body + b"\x00" * (USERBLOCK_SIZE - len(body))


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(USERBLOCK_SIZE)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_file(lib: Library, path: Path) -> None:
    import h5py

    from ramanid.atomic import atomic_path

    hashes = lib.entry_hashes()
    lib_sha = lib._content_hash(hashes)
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=USERBLOCK_SIZE, libver="earliest") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["header"] = canonical_json(lib._header())
            f.attrs["recipe"] = canonical_json(lib.recipe)
            f.attrs["changelog"] = canonical_json(lib.changelog)
            f.attrs["library_sha256"] = lib_sha
            f.create_dataset("axis", data=lib.axis, track_times=False)
            f.create_dataset("matrix", data=lib._processed, dtype="<f4", track_times=False)
            f.create_dataset("entry_ids", data=[e.id for e in lib.all_entries], dtype=str_dt,
                             track_times=False)
            grp = f.create_group("entries")
            for e, eh in zip(lib.all_entries, hashes, strict=True):
                g = grp.create_group(e.id)
                g.attrs["metadata"] = canonical_json(e.to_dict())
                g.attrs["entry_sha256"] = eh
                a, v = lib._raw[e.id]
                g.create_dataset("raw_axis", data=a, dtype="<f8", track_times=False)
                g.create_dataset("raw_values", data=v, dtype="<f8", track_times=False)
            if lib.signature:
                s = f.create_group("signature")
                for k, val in lib.signature.items():
                    s.attrs[k] = str(val)
        file_sha = _file_sha(tmp)
        with open(tmp, "r+b") as fh:
            fh.write(_userblock(file_sha, lib_sha))
        os.chmod(tmp, 0o644)  # a library is shared data (mkstemp creates 0600)


def _read_userblock(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    with open(path, "rb") as fh:
        block = fh.read(USERBLOCK_SIZE)
    if not block.startswith(USERBLOCK_MAGIC):
        return None, "not a ramanid library file (no ramanid header)"
    try:
        line = block[len(USERBLOCK_MAGIC):].split(b"\n", 1)[0]
        info = json.loads(line.decode("utf-8"))
        if block != _userblock(info["file_sha256"], info["library_sha256"]):
            return info, "the file header block was altered"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None, "the file header block was altered (unreadable)"
    return info, None


def load_library(path: str | os.PathLike[str] | None = None, *, verify: bool = True,
                 trusted_keys: Iterable[str | bytes | os.PathLike[str]] | None = None,
                 allow_tampered: bool = False, require_signature: bool | None = None) -> Library:
    """Read a library file and check its integrity.

    Parameters
    ----------
    path
        Library file; ``None`` for :func:`default_library_path`.
    verify
        Check the file hash, every entry hash, the library hash and the signature.
    trusted_keys
        Public keys (key lines, hex, raw bytes or ``.pub`` paths) to trust; ``None`` reads
        ``$RAMANID_HOME/trusted_keys/*.pub``. When any trusted key is configured, the library
        must be signed by one of them.
    allow_tampered
        Forensic inspection: load a damaged or altered file anyway; the problems are listed in
        :attr:`Library.integrity_problems` instead of raising.
    require_signature
        Refuse unsigned libraries and libraries whose signature no trusted key vouches for
        (a valid signature by an unknown key proves nothing); default: when trusted keys are
        configured.

    Raises
    ------
    LibraryError
        Missing, unreadable, damaged, altered, badly signed or untrusted library.
    """
    import h5py

    from ramanid import signing

    path = Path(path) if path is not None else default_library_path()
    if path.is_dir():
        raise LibraryError("is a directory, not a library file", source=path,
                           hint="pass the library's .h5 file")
    if not path.is_file():
        raise LibraryError("library file not found", source=path,
                           hint="build it with `ramanid library build` or pass --library")
    problems: list[str] = []
    info, problem = _read_userblock(path)
    if problem:
        problems.append(problem)
        if info is None and not allow_tampered:
            raise LibraryError(problem, source=path,
                               hint="this is not a ramanid library, or its header was damaged")
    if verify and info is not None and _file_sha(path) != info.get("file_sha256"):
        problems.append("file contents do not match the file hash (bytes were changed)")
        if not allow_tampered:  # refuse before the HDF5 library parses untrusted bytes
            raise LibraryError("library refused: its contents were altered or damaged (file "
                               "hash mismatch)", source=path,
                               hint="do not use it; load the laboratory's signed copy "
                                    "(`ramanid library verify` lists what changed)")
    try:
        lib = _read_hdf5(h5py, path)
    except LibraryError:
        raise
    except Exception as exc:  # any failure of a damaged file is a refusal, never a traceback
        msg = f"library file is damaged and cannot be read ({exc.__class__.__name__}: {exc})"
        raise LibraryError(" ".join(msg.split())[:300], source=path,
                           hint="restore it from the laboratory's signed copy") from None
    stored_entry_sha, stored_lib_sha = lib._stored_hashes  # type: ignore[attr-defined]
    if verify:
        actual = lib.entry_hashes()
        for e, want, got in zip(lib.all_entries, stored_entry_sha, actual, strict=True):
            if want != got:
                problems.insert(0, f"entry {e.id} ({e.name}) was altered: its content hash "
                                   "does not match")
        if lib._content_hash(actual) != stored_lib_sha:
            problems.append("library hash does not match its contents")
        if info is not None and info.get("library_sha256") != stored_lib_sha:
            problems.append("library hash in the file header differs from the stored one")
        trusted = signing.load_trusted_keys(trusted_keys)
        status = lib.check_signature(trusted)
        lib.signature_status = status
        if require_signature is None:
            require_signature = bool(trusted)
        if status == "invalid":
            problems.append("the signature is not valid for this library (altered after "
                            "signing, or a damaged signature)")
        elif status == "untrusted":
            problems.append(f"signed by key {lib.signature['key_id']} which is not a trusted "
                            "key of this unit")
        elif status == "unsigned" and require_signature:
            problems.append("the library is not signed, and this unit requires a signed library")
        elif status == "valid-untrusted" and require_signature:
            # A valid signature by an unknown key proves nothing: anyone can re-sign.
            problems.append(f"signed by key {lib.signature['key_id']}, but no trusted key is "
                            "configured to check it against (pass --trusted-key, or install "
                            "the laboratory's key with `ramanid library keygen --trust`)")
    lib.integrity_problems = problems
    if problems and not allow_tampered:
        extra = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise LibraryError(f"library refused: {problems[0]}{extra}", source=path,
                           hint="do not use it; load the laboratory's signed copy "
                                "(`ramanid library verify` lists every problem)")
    return lib


def _read_hdf5(h5py: Any, path: Path) -> Library:
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT_NAME:
            raise ValueError("not a ramanid library (format attribute missing)")
        fv = int(f.attrs["format_version"])
        if fv > FORMAT_VERSION:
            raise LibraryError(f"library format version {fv} is newer than this ramanid "
                               f"understands ({FORMAT_VERSION})", source=path,
                               hint="upgrade ramanid")
        header = json.loads(f.attrs["header"])
        recipe = json.loads(f.attrs["recipe"])
        changelog = json.loads(f.attrs["changelog"])
        axis = f["axis"][()]
        matrix = f["matrix"][()]
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["entry_ids"][()]]
        entries, raw, hashes = [], {}, []
        for eid in ids:
            g = f["entries"][eid]
            meta = json.loads(g.attrs["metadata"])
            entries.append(Entry.from_dict(meta))
            raw[entries[-1].id] = (g["raw_axis"][()], g["raw_values"][()])
            hashes.append(str(g.attrs["entry_sha256"]))
        signature = ({k: str(v) for k, v in f["signature"].attrs.items()}
                     if "signature" in f else None)
        lib_sha = str(f.attrs["library_sha256"])
    lib = Library(recipe=recipe, axis=axis, entries=entries, raw=raw, processed=matrix,
                  version=header["library_version"], parent_version=header.get("parent_version"),
                  created=header.get("created"), name=header.get("name", ""),
                  description=header.get("description", ""), changelog=changelog, path=path)
    lib.signature = signature
    lib._stored_hashes = (hashes, lib_sha)  # type: ignore[attr-defined]
    return lib


# -- comparing versions ------------------------------------------------------------------------
def library_differences(a: Library, b: Library, *, atol: float = 1e-5) -> list[str]:
    """Differences between two libraries that should be the same build (empty list: same).

    Header, recipe, change log, entry metadata and raw spectra must be identical; processed rows
    may differ by ``atol`` (floating-point results of the recipe can differ in the last bits
    between machines and numerical libraries). Used to check the shipped library against a
    fresh build.
    """
    out = []
    if a._header() != b._header():
        out.append(f"header differs: {a._header()} != {b._header()}")
    if a.recipe != b.recipe:
        out.append("recipe differs (rebuild with the current recipe)")
    if a.changelog != b.changelog:
        out.append("change log differs")
    ia, ib = [e.id for e in a.all_entries], [e.id for e in b.all_entries]
    if ia != ib:
        out.append(f"entry ids differ: {sorted(set(ia) ^ set(ib))}")
        return out
    for ea, eb in zip(a.all_entries, b.all_entries, strict=True):
        if ea.to_dict() != eb.to_dict():
            out.append(f"metadata of {ea.id} ({ea.name}) differs")
        ra, rb = a._raw[ea.id], b._raw[eb.id]
        if not (np.array_equal(ra[0], rb[0]) and np.array_equal(ra[1], rb[1])):
            out.append(f"raw spectrum of {ea.id} ({ea.name}) differs")
    if a.axis.shape != b.axis.shape or not np.allclose(a.axis, b.axis, rtol=0, atol=1e-9):
        out.append("library axis differs")
    else:
        dev = float(np.abs(a._processed.astype(np.float64) - b._processed).max(initial=0.0))
        if dev > atol:
            out.append(f"processed spectra differ by up to {dev:.2g} (> {atol:g}): the recipe's "
                       "implementation changed; rebuild")
    return out


def diff_libraries(old: Library, new: Library) -> dict[str, Any]:
    """What changed from ``old`` to ``new``: the input analysts need to re-identify archives.

    Returns
    -------
    dict
        ``old_version``, ``new_version``, ``recipe_changed``, ``added`` (entries new in ``new``),
        ``removed`` (gone from the file), ``retired``, ``approved`` (became usable),
        ``changed`` (same id, with the list of fields that differ), each a list of
        ``{"id", "name", "status", "hazard_level", ...}``; ``usable_added`` / ``usable_removed``
        list the ids whose usability changed (what re-identification must consider).
    """
    o = {e.id: e for e in old.all_entries}
    n = {e.id: e for e in new.all_entries}

    def brief(e: Entry, **more: Any) -> dict[str, Any]:
        return {"id": e.id, "name": e.name, "status": e.status, "hazard_level": e.hazard_level,
                "provenance_kind": e.provenance_kind, **more}

    added = [brief(n[i]) for i in n if i not in o]
    removed = [brief(o[i]) for i in o if i not in n]
    retired, approved, changed = [], [], []
    for i in n:
        if i not in o:
            continue
        a, b = o[i].to_dict(), n[i].to_dict()
        fields = sorted(k for k in a if a[k] != b.get(k))
        if a["status"] != "retired" and b["status"] == "retired":
            retired.append(brief(n[i]))
        if a["status"] != "approved" and b["status"] == "approved":
            approved.append(brief(n[i]))
        data_changed = (not np.array_equal(old.processed(i), new.processed(i))
                        if old.axis.shape == new.axis.shape else True)
        if data_changed:
            fields.append("processed")
        if fields:
            changed.append(brief(n[i], fields=fields))
    usable_old = {e.id for e in old.entries}
    usable_new = {e.id for e in new.entries}
    return {"old_version": old.version, "new_version": new.version,
            "old_sha256": old.sha256, "new_sha256": new.sha256,
            "recipe_changed": old.recipe != new.recipe,
            "added": added, "removed": removed, "retired": retired, "approved": approved,
            "changed": changed, "usable_added": sorted(usable_new - usable_old),
            "usable_removed": sorted(usable_old - usable_new)}


__all__ = [
    "ENTRY_FIELDS",
    "FORMAT_VERSION",
    "HAZARD_LEVELS",
    "PROVENANCE_KINDS",
    "STATUSES",
    "Entry",
    "Library",
    "LibrarySource",
    "build_library",
    "canonical_json",
    "default_library_path",
    "default_recipe",
    "diff_libraries",
    "entry_id_for",
    "library_differences",
    "library_from_batch",
    "load_library",
    "recipe_from_dict",
]
