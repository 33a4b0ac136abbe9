"""Ed25519 signatures of the daily audit archives (the ``cryptography`` library).

The private key is ``ECLIPSE_AUDIT_SIGNING_KEY`` (PEM, PKCS#8), or, when unset, a key generated once into the
local data folder (``{data folder}/audit-signing-key.pem``, mode 0600) for the run command and development.
What is signed is the SHA-256 of an archive's content lines (:func:`signed_message`); the public half, printed
by ``eclipse-exports audit public-key``, is all ``audit verify`` needs.
"""

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE_NAME = "audit-signing-key.pem"
SIGNATURE_CONTEXT = b"eclipse-exports audit archive v1\n"


class SigningKeyError(ValueError):
    """The configured signing key cannot be used (not PEM, not Ed25519, unreadable)."""


def signed_message(content_sha256: str) -> bytes:
    """The bytes an archive's signature covers: a fixed context line and the hex SHA-256 of its content."""
    return SIGNATURE_CONTEXT + content_sha256.encode("ascii")


def load_private_key(pem: str | None, data_dir: Path | None = None) -> Ed25519PrivateKey:
    """The signing key from ``pem`` (``ECLIPSE_AUDIT_SIGNING_KEY``), else the data folder's own key, generated
    and written (0600) on first use. Raises :class:`SigningKeyError` for a key that is not an Ed25519 PEM, and
    when neither a key nor a data folder is given."""
    if pem:
        if "\n" not in pem.strip():  # one line from an env file, its line breaks written as \n
            pem = pem.replace("\\n", "\n")
        return _parse_private(pem.encode("utf-8"), "ECLIPSE_AUDIT_SIGNING_KEY")
    if data_dir is None:
        raise SigningKeyError("no audit signing key: set ECLIPSE_AUDIT_SIGNING_KEY (an Ed25519 private key, PEM)")
    path = Path(data_dir) / KEY_FILE_NAME
    if path.exists():
        return _parse_private(path.read_bytes(), str(path))
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, private_pem(key))
    finally:
        os.close(descriptor)
    return key


def _parse_private(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{where} is not a PEM private key without a password: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{where} is a {type(key).__name__}, not an Ed25519 key")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (what ``ECLIPSE_AUDIT_SIGNING_KEY`` holds)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public half as SubjectPublicKeyInfo PEM."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; raises :class:`SigningKeyError` for anything else."""
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"a {type(key).__name__}, not an Ed25519 public key")
    return key


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key: names the key in each archive."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, content_sha256: str) -> str:
    """The base64 Ed25519 signature of :func:`signed_message`."""
    return base64.b64encode(key.sign(signed_message(content_sha256))).decode("ascii")


def signature_valid(key: Ed25519PublicKey, content_sha256: str, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``key``'s signature of :func:`signed_message`."""
    try:
        key.verify(base64.b64decode(signature, validate=True), signed_message(content_sha256))
    except (InvalidSignature, ValueError):
        return False
    return True
