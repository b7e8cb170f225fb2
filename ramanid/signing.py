"""Ed25519 keys and signatures for reference libraries.

A laboratory signs a library with its private key; field units verify the signature against the
public keys they trust. Signing uses the ``cryptography`` package (Ed25519, RFC 8032).

Key files
---------
* private key: PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``), written with mode 0600, optionally
  encrypted with a passphrase;
* public key: one text line ``ramanid-ed25519 <64 hex digits> [comment]``.

Trusted public keys of a field unit live in ``$RAMANID_HOME/trusted_keys/*.pub`` (see
:func:`trusted_keys_dir`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from ramanid.atomic import atomic_write_bytes, atomic_write_text
from ramanid.errors import LibraryError, UsageError
from ramanid.paths import data_home

PUBLIC_KEY_TAG = "ramanid-ed25519"
SIGNATURE_ALGORITHM = "Ed25519"
#: Domain-separation prefix of every signed message (so a library signature can never be
#: replayed as a signature of anything else).
SIGNATURE_CONTEXT = b"ramanid-library-signature-v1\x00"


def key_id(public_raw: bytes) -> str:
    """Short fingerprint of a public key: first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def generate_keypair(private_path: str | os.PathLike[str], public_path: str | os.PathLike[str]
                     | None = None, *, comment: str = "", passphrase: bytes | None = None,
                     overwrite: bool = False) -> tuple[Path, Path, str]:
    """Create an Ed25519 key pair and write both files atomically.

    Parameters
    ----------
    private_path
        Where to write the private key (PEM, mode 0600).
    public_path
        Where to write the public key; default ``private_path`` + ``.pub``.
    comment
        Free text appended to the public key line (e.g. the laboratory name).
    passphrase
        Encrypt the private key with this passphrase.
    overwrite
        Replace existing files (refused otherwise).

    Returns
    -------
    (private path, public path, key id)
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else Path(str(private_path) + ".pub")
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise UsageError("key file exists already", source=p,
                             hint="choose another path or pass --force")
    key = Ed25519PrivateKey.generate()
    enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
           else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    atomic_write_bytes(private_path, pem)
    os.chmod(private_path, 0o600)
    line = f"{PUBLIC_KEY_TAG} {raw.hex()} {comment}".rstrip() + "\n"
    atomic_write_text(public_path, line)
    return private_path, public_path, key_id(raw)


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None):
    """Read an Ed25519 private key (PKCS#8 PEM); raise :class:`UsageError` when unusable."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = Path(path).read_bytes()
        key = serialization.load_pem_private_key(data, password=passphrase)
    except FileNotFoundError:
        raise UsageError("private key file not found", source=path,
                         hint="create one with `ramanid library keygen`") from None
    except IsADirectoryError:
        raise UsageError("is a directory, not a private key file", source=path) from None
    except (ValueError, TypeError) as exc:
        detail = str(exc).split(". See https://")[0]  # cryptography appends a FAQ link
        raise UsageError(f"not a usable private key ({detail})", source=path,
                         hint="pass the PEM file written by `ramanid library keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError("private key is not Ed25519", source=path)
    return key


def public_raw_of(private_key) -> bytes:
    """Raw 32-byte public key of a private key object."""
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)


def parse_public_key(text_or_path: str | bytes | os.PathLike[str]) -> bytes:
    """Return the raw 32-byte public key from a key line, 64 hex digits, raw bytes or a file."""
    if isinstance(text_or_path, bytes) and len(text_or_path) == 32:
        return text_or_path
    if isinstance(text_or_path, bytes):
        text_or_path = text_or_path.decode("ascii", "replace")
    text = str(text_or_path).strip()
    source = None
    if not _looks_like_key_text(text):
        source = text
        try:
            text = Path(text).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise UsageError("neither a public key file nor a key", source=source,
                             hint=f"give a .pub file written by `ramanid library keygen`, or "
                                  f"'{PUBLIC_KEY_TAG} <64 hex digits>'") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read public key ({exc.__class__.__name__})",
                             source=source) from None
    parts = text.split()
    hexpart = parts[1] if parts and parts[0] == PUBLIC_KEY_TAG and len(parts) > 1 else (
        parts[0] if parts else "")
    try:
        raw = bytes.fromhex(hexpart)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageError("not a ramanid Ed25519 public key", source=source,
                         hint=f"expected a line '{PUBLIC_KEY_TAG} <64 hex digits>'")
    return raw


def _looks_like_key_text(text: str) -> bool:
    if text.startswith(PUBLIC_KEY_TAG + " "):
        return True
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def trusted_keys_dir() -> Path:
    """Directory of the public keys this unit trusts: ``$RAMANID_HOME/trusted_keys``."""
    return data_home() / "trusted_keys"


def load_trusted_keys(keys: Iterable[str | bytes | os.PathLike[str]] | None = None) -> list[bytes]:
    """Raw public keys to trust: the given ones, else ``*.pub`` in :func:`trusted_keys_dir`."""
    if keys is not None:
        return [parse_public_key(k) for k in keys]
    directory = trusted_keys_dir()
    if not directory.is_dir():
        return []
    return [parse_public_key(p) for p in sorted(directory.glob("*.pub"))]


def sign_digest(private_key, digest_hex: str) -> bytes:
    """Sign a library content hash (hex string) with the domain-separated message."""
    return private_key.sign(SIGNATURE_CONTEXT + digest_hex.encode("ascii"))


def verify_digest(public_raw: bytes, digest_hex: str, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``digest_hex`` by ``public_raw``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(
            signature, SIGNATURE_CONTEXT + digest_hex.encode("ascii"))
    except (InvalidSignature, ValueError):
        return False
    return True


__all__ = [
    "SIGNATURE_ALGORITHM", "LibraryError", "generate_keypair", "key_id", "load_private_key",
    "load_trusted_keys", "parse_public_key", "public_raw_of", "sign_digest", "trusted_keys_dir",
    "verify_digest",
]
