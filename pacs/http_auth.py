"""Authentication for the whole HTTP port: one middleware on the root application.

Rules (``[http]`` settings):

- ``OPTIONS`` (CORS preflight) is never challenged.
- A request that changes data (any method but GET/HEAD/OPTIONS) needs a valid user, and so
  does a read when ``auth_required_for_reads``, unless it comes from this machine and
  ``allow_loopback_without_auth`` (the default, as Orthanc's).
- With no user or token configured, such a request is refused (403, saying how to add one),
  never let through.
- Credentials: HTTP Basic against ``[http.users]`` (scrypt hashes), or
  ``Authorization: Bearer <token>`` against ``[http.tokens]`` (SHA-256 hashes). Wrong
  credentials are a 401 on any route, even one that needs none.
- ``request["pacs.user"]`` is the authenticated name, or ``None``.

The client address is the TCP peer; ``X-Forwarded-For`` is read only when the peer is one
of ``trusted_proxies``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from pacs.passwords import ScryptHash, hash_password, parse_password_hash, parse_token_hash
from pacs.settings import HttpSettings

log = logging.getLogger("pacs.http.auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_KEY = "pacs.user"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALWAYS_OPEN = frozenset({"/health"})  # liveness probes of load balancers
CACHE_SECONDS = 300.0
CACHE_SIZE = 1024
CHALLENGE = 'Basic realm="pacs", charset="UTF-8"'
HOW_TO_ADD_A_USER = (
    "no HTTP user is configured, so requests that change data are accepted only from this "
    "machine: run `pacs hash-password`, put the result in the configuration as "
    '[http.users] <name> = "<hash>", and restart'
)


def _address(text: str | None) -> Address | None:
    """The IP address, IPv4-mapped IPv6 addresses as IPv4; None if it is not one."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass
class CredentialCache:
    """Recently verified (user, password) pairs, so scrypt runs once per pair and few
    minutes, not per request. Keys are HMACs under a per-process random key: the
    passwords themselves are not kept."""

    seconds: float = CACHE_SECONDS
    size: int = CACHE_SIZE
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _entries: OrderedDict[bytes, float] = field(default_factory=OrderedDict)

    def _fingerprint(self, user: str, password: str) -> bytes:
        message = user.encode("utf-8") + b"\0" + password.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        key = self._fingerprint(*pair)
        expires = self._entries.get(key)
        if expires is None or expires < time.monotonic():
            self._entries.pop(key, None)
            return False
        return True

    def add(self, user: str, password: str) -> None:
        key = self._fingerprint(user, password)
        self._entries[key] = time.monotonic() + self.seconds
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class HttpAuth:
    """The policy and the credential checks behind :meth:`middleware`."""

    def __init__(
        self,
        users: Iterable[tuple[str, str]] = (),
        tokens: Iterable[tuple[str, str]] = (),
        *,
        auth_required_for_reads: bool = False,
        allow_loopback_without_auth: bool = True,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self._users: dict[str, ScryptHash] = {
            name: parse_password_hash(value) for name, value in users
        }
        self._tokens: dict[bytes, str] = {parse_token_hash(value): name for name, value in tokens}
        self.auth_required_for_reads = auth_required_for_reads
        self.allow_loopback_without_auth = allow_loopback_without_auth
        self._proxies: list[Network] = [
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies
        ]
        # Unknown user names cost a scrypt run too, so that timing does not tell them apart.
        self._decoy = parse_password_hash(hash_password(secrets.token_hex(16)))
        self._cache = CredentialCache()
        self._scrypt_slots = asyncio.Semaphore(2)  # bounded CPU for credential floods

    @classmethod
    def from_settings(cls, http: HttpSettings) -> HttpAuth:
        """The policy of the ``[http]`` settings."""
        return cls(
            http.users,
            http.tokens,
            auth_required_for_reads=http.auth_required_for_reads,
            allow_loopback_without_auth=http.allow_loopback_without_auth,
            trusted_proxies=http.trusted_proxies,
        )

    @property
    def has_credentials(self) -> bool:
        """Whether any user or token is configured."""
        return bool(self._users or self._tokens)

    def _is_proxy(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self._proxies)

    def client_address(self, request: web.Request) -> Address | None:
        """The TCP peer, or, behind a trusted proxy, the last X-Forwarded-For hop that is
        not a trusted proxy (earlier hops are the client's own claims)."""
        peer = _address(request.remote)
        if not self._is_proxy(peer):
            return peer
        hops = [
            hop
            for value in request.headers.getall("X-Forwarded-For", [])
            for hop in value.split(",")
        ]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return None  # garbled: trust nothing
            if not self._is_proxy(address):
                return address
        return peer

    def _needs_user(self, request: web.Request) -> bool:
        if request.method == "OPTIONS":
            return False
        if request.method in READ_METHODS and (
            not self.auth_required_for_reads or request.path in ALWAYS_OPEN
        ):
            return False
        if self.allow_loopback_without_auth:
            address = self.client_address(request)
            if address is not None and address.is_loopback:
                return False
        return True

    async def _check_basic(self, encoded: str) -> str | None:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, colon, password = decoded.partition(":")
        if not colon:
            return None
        if (user, password) in self._cache:
            return user
        stored = self._users.get(user, self._decoy)
        async with self._scrypt_slots:
            good = await asyncio.to_thread(stored.matches, password)
        if not good or user not in self._users:
            return None
        self._cache.add(user, password)
        return user

    def _check_bearer(self, token: str) -> str | None:
        digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
        for stored, name in self._tokens.items():
            if hmac.compare_digest(stored, digest):
                return name
        return None

    async def authenticate(self, header: str) -> str | None:
        """The user named by a valid ``Authorization`` header, else None."""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "basic":
            return await self._check_basic(value)
        if scheme.lower() == "bearer":
            return self._check_bearer(value)
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Admit, challenge (401) or refuse (403) the request; record who made it."""
        request[USER_KEY] = None
        header = request.headers.get("Authorization")
        if header is not None and request.method != "OPTIONS":
            user = await self.authenticate(header)
            if user is None:
                log.warning(
                    "HTTP %s %s from %s: wrong credentials",
                    request.method,
                    request.path,
                    request.remote,
                )
                raise _error(web.HTTPUnauthorized, "wrong user name, password or token")
            request[USER_KEY] = user
        elif self._needs_user(request):
            if not self.has_credentials:
                raise _error(web.HTTPForbidden, HOW_TO_ADD_A_USER)
            raise _error(web.HTTPUnauthorized, "authentication required")
        log.debug(
            "HTTP %s %s from %s, user %s",
            request.method,
            request.path,
            request.remote,
            request[USER_KEY],
        )
        return await handler(request)


def _error(kind: type[web.HTTPClientError], message: str) -> web.HTTPClientError:
    """A JSON error; 401s carry the Basic challenge."""
    headers = {"WWW-Authenticate": CHALLENGE} if kind is web.HTTPUnauthorized else {}
    body = json.dumps({"error": message, "HttpStatus": kind.status_code, "Message": message})
    return kind(text=body, content_type="application/json", headers=headers)
