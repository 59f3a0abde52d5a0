"""Basic-auth passwords kept as scrypt hashes, so a config file never has to hold one in clear.

The standard library's `hashlib.scrypt` is a memory-hard key derivation function; it needs no
dependency. A hash reads `scrypt$<n>$<r>$<p>$<salt>$<key>` (salt and key in base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1
KEY_BYTES = 32
PREFIX = "scrypt"


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new salted hash of `password`."""
    salt = os.urandom(16)
    key = _derive(password, salt, n, r, p)
    return "$".join([PREFIX, str(n), str(r), str(p), _b64(salt), _b64(key)])


def check_format(text: str) -> None:
    """Raise ValueError unless `text` is a hash written by `hash_password`."""
    _parse(text)


def verify(password: str, hashed: str) -> bool:
    """Whether `password` matches `hashed` (in constant time). A match is remembered by the
    password's SHA-256 only, so a dashboard page's many requests cost one scrypt (~50 ms)."""
    digest = hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
    if (digest, hashed) in _verified:
        return True
    n, r, p, salt, key = _parse(hashed)
    if not hmac.compare_digest(_derive(password, salt, n, r, p), key):
        return False
    if len(_verified) >= MAX_REMEMBERED:
        _verified.clear()
    _verified.add((digest, hashed))
    return True


MAX_REMEMBERED = 256
_verified: set[tuple[bytes, str]] = set()


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + 2**20,
        dklen=KEY_BYTES,
    )


def _parse(text: str) -> tuple[int, int, int, bytes, bytes]:
    parts = text.strip().split("$")
    expected = "expected scrypt$<n>$<r>$<p>$<salt>$<key> as printed by `vigil hash-password`"
    if len(parts) != 6 or parts[0] != PREFIX:
        raise ValueError(f"not a password hash; {expected}")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ValueError(f"a malformed password hash; {expected}") from None
    if n < 2**10 or n > 2**20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError(f"password hash parameters out of range (n={n}, r={r}, p={p}); {expected}")
    if len(salt) < 8 or len(key) != KEY_BYTES:
        raise ValueError(f"a password hash with a short salt or key; {expected}")
    return n, r, p, salt, key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
