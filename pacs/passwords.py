"""Password and token hashes for ``[http.users]`` and ``[http.tokens]``.

A password hash is self-describing: ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (salt and hash in
unpadded URL-safe base64), so its cost can be raised later without breaking stored ones.
A bearer token is random (256 bits) and needs no slow hash: it is kept as
``sha256$<hex>``, which lets a token be found by its digest instead of trying each one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_KEY_LENGTH = 32
_MAX_N = 2**20  # a hash asking for more would let a settings file exhaust memory


class BadHash(ValueError):
    """A stored hash that is not in one of the formats above."""


@dataclass(frozen=True)
class ScryptHash:
    """A parsed ``scrypt$...`` password hash."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def matches(self, password: str) -> bool:
        """Whether the password gives this hash (slow by design; constant-time compare)."""
        candidate = hashlib.scrypt(
            password.encode("utf-8"),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=256 * self.n * self.r + 1024**2,
            dklen=len(self.digest),
        )
        return hmac.compare_digest(candidate, self.digest)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A new ``scrypt$n$r$p$salt$hash`` string for the password (random salt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + 1024**2,
        dklen=_KEY_LENGTH,
    )
    return f"scrypt${n}${r}${p}${_b64encode(salt)}${_b64encode(digest)}"


def parse_password_hash(text: str) -> ScryptHash:
    """The parsed hash; :class:`BadHash` saying what is wrong otherwise."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise BadHash("expected scrypt$n$r$p$salt$hash (made by `pacs hash-password`)")
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, digest = _b64decode(parts[4]), _b64decode(parts[5])
    except ValueError:
        raise BadHash("scrypt parameters must be integers, salt and hash base64") from None
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise BadHash(f"scrypt parameters out of range: n={n} r={r} p={p}")
    if len(salt) < 8 or len(digest) < 16:
        raise BadHash("salt or hash too short")
    return ScryptHash(n, r, p, salt, digest)


def new_token() -> str:
    """A fresh bearer token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The ``sha256$<hex>`` form of a bearer token, as written in ``[http.tokens]``."""
    return "sha256$" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_token_hash(text: str) -> bytes:
    """The SHA-256 digest of a ``sha256$<hex>`` token hash; :class:`BadHash` otherwise."""
    kind, _, hexdigest = text.partition("$")
    try:
        digest = bytes.fromhex(hexdigest)
    except ValueError:
        digest = b""
    if kind != "sha256" or len(digest) != 32:
        raise BadHash("expected sha256$<64 hex digits> (made by `pacs hash-password --token`)")
    return digest
