"""Blobs as objects in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, Garage...).

Location: ``s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1``. A blob
``key`` is the object ``prefix/YYYYMMDD/key``. Query parameters (all optional):

- ``endpoint``: the server's URL (none = AWS); ``region`` (default ``us-east-1``);
- ``profile``: a profile of the AWS config files;
- ``create_bucket=true``: create the bucket on the first write when it is missing;
- ``checksum=off``: send no SHA-256 checksum headers (servers without flexible checksums);
- ``part_mb`` (default 8): multipart part size; ``connect_timeout`` (s, default 1);
  ``read_timeout`` (s, default 30); ``retries`` (attempts per request, default 3).

Credentials come from the standard AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``~/.aws/credentials``, instance roles), never from the URL.

Writes: a blob up to one part is sent in one PUT, a larger one as a multipart upload of
``part_mb`` parts (memory stays at about one part whatever the blob's size). The SHA-256 is
computed while streaming; each request carries the SHA-256 of its body (the server refuses a
body that does not match) and a checksum the server reports back is compared. Single-PUT
objects also carry the blob's SHA-256 as ``x-amz-meta-sha256``; a multipart object carries
the composite checksum of its parts (S3 cannot take metadata computed after the first part).
An object is visible only once complete; a failed multipart upload (the chunks' source raising
included) is aborted. A successful PUT is durable, so :meth:`S3BlobStore.sync` does nothing.

Reads: :meth:`S3BlobStore.open` returns a buffered, seekable reader that streams the object
(a seek re-opens the stream with a ranged GET, conditional on the ETag); a connection lost
mid-read resumes from where it stopped. ``local_path`` is always None.

Errors: an unreachable server or one that keeps failing (after bounded retries with backoff:
about 3 s at most for a refused connection, 6 s for a silent one) raises
:class:`BlobStoreUnavailable`; a missing object :class:`BlobNotFound`; a missing bucket or
refused credentials a :class:`BlobStoreError` that says so. The store is thread-safe (one
boto3 client, shared).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from storage.blobstore import (
    BlobInfo,
    BlobNotFound,
    BlobStoreError,
    BlobStoreFull,
    BlobStoreUnavailable,
    check_key,
)

log = logging.getLogger(__name__)

MiB = 1 << 20
MAX_PARTS = 10_000  # an S3 limit
_READ_BUFFER = MiB
_READ_ATTEMPTS = 3
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_FULL = {"QuotaExceeded", "XMinioStorageFull", "StorageFull", "EntityTooLarge"}
_BUSY = {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "503", "500"}
_PARAMETERS = {
    "endpoint",
    "region",
    "profile",
    "create_bucket",
    "checksum",
    "part_mb",
    "connect_timeout",
    "read_timeout",
    "retries",
}


class S3BlobStore:
    """``bucket/prefix/YYYYMMDD/<key>`` objects, written whole or not at all."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str = "us-east-1",
        profile: str | None = None,
        create_bucket: bool = False,
        checksum: bool = True,
        part_size: int = 8 * MiB,
        connect_timeout: float = 1.0,
        read_timeout: float = 30.0,
        retries: int = 3,
        max_connections: int = 32,
    ) -> None:
        if part_size < 5 * MiB:
            raise BlobStoreError("S3 multipart parts must be at least 5 MB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.create_bucket = create_bucket
        self.checksum = checksum
        self.part_size = part_size
        self._bucket_ready = not create_bucket
        self._bucket_lock = threading.Lock()
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": max(1, retries), "mode": "standard"},
            max_pool_connections=max_connections,
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint else "auto"},
            request_checksum_calculation="when_supported" if checksum else "when_required",
            response_checksum_validation="when_required",
        )
        # A session is not thread-safe, its clients are: one client serves every thread.
        session = boto3.session.Session(profile_name=profile)
        self._client: Any = session.client(
            "s3", endpoint_url=endpoint, region_name=region, config=config
        )

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """The store at ``s3://bucket/prefix?endpoint=...`` (see the module's docstring)."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.hostname:
            raise BlobStoreError(f"not an s3://bucket/prefix URL: {url!r}")
        if parts.username or parts.password:
            raise BlobStoreError("S3 credentials do not belong in the URL: use the AWS chain")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - _PARAMETERS)
        if unknown:
            raise BlobStoreError(f"unknown S3 URL parameter(s) {', '.join(unknown)} in {url!r}")
        try:
            return cls(
                parts.netloc,
                parts.path,
                endpoint=query.get("endpoint") or None,
                region=query.get("region", "us-east-1"),
                profile=query.get("profile") or None,
                create_bucket=_flag(query.get("create_bucket", "false")),
                checksum=query.get("checksum", "sha256").lower() not in ("off", "false", "0"),
                part_size=int(float(query.get("part_mb", "8")) * MiB),
                connect_timeout=float(query.get("connect_timeout", "1")),
                read_timeout=float(query.get("read_timeout", "30")),
                retries=int(query.get("retries", "3")),
            )
        except ValueError as exc:
            raise BlobStoreError(f"bad S3 URL parameter in {url!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location!r})"

    @property
    def location(self) -> str:
        """Where the blobs are, for messages."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return where + (f" at {self.endpoint}" if self.endpoint else "")

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key[:8]}/{key}" if self.prefix else f"{key[:8]}/{key}"

    # --- writing ------------------------------------------------------------------------

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        name = self._name(key)
        self._ensure_bucket()
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload: _MultipartUpload | None = None
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                while len(buffer) >= self.part_size:
                    if upload is None:
                        upload = _MultipartUpload(self, name)
                    upload.add(bytes(memoryview(buffer)[: self.part_size]))
                    del buffer[: self.part_size]
            if upload is None:
                self._put_single(name, bytes(buffer), digest.hexdigest())
            else:
                if buffer:
                    upload.add(bytes(buffer))
                buffer = bytearray()
                upload.complete(size)
        except BaseException as exc:
            if upload is not None:
                upload.abort()
            if isinstance(exc, BotoCoreError | ClientError):
                raise self._error(exc, f"write {key}") from exc
            raise
        return BlobInfo(size=size, sha256=digest.hexdigest())

    def _put_single(self, name: str, body: bytes, sha256: str) -> None:
        extra: dict[str, str] = {}
        expected = ""
        if self.checksum:
            expected = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
            extra["ChecksumSHA256"] = expected
        reply = self._client.put_object(
            Bucket=self.bucket, Key=name, Body=body, Metadata={"sha256": sha256}, **extra
        )
        reported = reply.get("ChecksumSHA256")
        if expected and reported and reported != expected:
            self._discard(name)
            raise BlobStoreError(f"{name}: the server stored checksum {reported}, not {expected}")

    def _ensure_bucket(self) -> None:
        """Create the bucket on first use when ``create_bucket`` is set."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in _NOT_FOUND | {"NoSuchBucket"}:
                    raise self._error(exc, "check the bucket") from exc
                try:
                    self._client.create_bucket(Bucket=self.bucket, **self._bucket_location())
                except ClientError as create_exc:
                    if _code(create_exc) != "BucketAlreadyOwnedByYou":
                        raise self._error(create_exc, "create the bucket") from create_exc
                log.info("created bucket %s", self.location)
            except BotoCoreError as exc:
                raise self._error(exc, "check the bucket") from exc
            self._bucket_ready = True

    def _bucket_location(self) -> dict[str, Any]:
        region = self._client.meta.region_name
        if not region or region == "us-east-1":
            return {}
        return {"CreateBucketConfiguration": {"LocationConstraint": region}}

    def sync(self) -> None:
        """Nothing to do: an object is durable once its PUT (or completion) succeeded."""

    # --- reading ------------------------------------------------------------------------

    def open(self, key: str) -> BinaryIO:
        name = self._name(key)
        reply = self._get(name, key)
        raw = _ObjectReader(self, key, name, reply)
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER)

    def _get(self, name: str, key: str, start: int = 0, etag: str = "") -> dict[str, Any]:
        extra: dict[str, str] = {}
        if start:
            extra["Range"] = f"bytes={start}-"
        if etag:
            extra["IfMatch"] = etag
        try:
            reply: dict[str, Any] = self._client.get_object(Bucket=self.bucket, Key=name, **extra)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, f"read {key}") from exc
        return reply

    def local_path(self, key: str) -> Path | None:
        return None

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def modified_time(self, key: str) -> float | None:
        """When the object was written (seconds since the epoch), None if it is missing."""
        head = self._head(key)
        return None if head is None else float(head["LastModified"].timestamp())

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            reply: dict[str, Any] = self._client.head_object(
                Bucket=self.bucket, Key=self._name(key)
            )
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise self._error(exc, f"look up {key}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"look up {key}") from exc
        return reply

    def keys(self) -> Iterator[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=root
        )
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    day, _, key = str(item["Key"])[len(root) :].partition("/")
                    if _is_key(key) and day == key[:8]:
                        yield key
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, "list blobs") from exc

    # --- removing -----------------------------------------------------------------------

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise self._error(exc, f"delete {key}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"delete {key}") from exc

    def _discard(self, name: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except (BotoCoreError, ClientError) as exc:  # logged, never raised over the real error
            log.error("cannot remove %s from %s: %s", name, self.location, exc)

    def pending_uploads(self) -> list[tuple[str, str, float]]:
        """Multipart uploads begun and neither completed nor aborted, under our prefix:
        (object name, upload id, when it began)."""
        root = f"{self.prefix}/" if self.prefix else ""
        found: list[tuple[str, str, float]] = []
        try:
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=root
            )
            for page in pages:
                for upload in page.get("Uploads", ()):
                    begun = float(upload["Initiated"].timestamp())
                    found.append((str(upload["Key"]), str(upload["UploadId"]), begun))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, "list pending uploads") from exc
        return found

    def remove_partial_writes(self, older_than: float = 86400.0) -> int:
        """Abort multipart uploads left by a crash (begun over ``older_than`` seconds ago, so
        another process's upload in flight is left alone); returns how many."""
        removed = 0
        now = time.time()
        for name, upload_id, begun in self.pending_uploads():
            if now - begun >= older_than:
                _abort(self._client, self.bucket, name, upload_id)
                removed += 1
        if removed:
            log.warning("aborted %d multipart upload(s) left in %s", removed, self.location)
        return removed

    # --- errors -------------------------------------------------------------------------

    def _error(self, exc: BaseException, doing: str) -> BlobStoreError:
        """The BlobStoreError for a boto3 failure while ``doing`` something."""
        where = self.location
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message", "") or str(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _NOT_FOUND:
                return BlobNotFound(doing.rsplit(" ", 1)[-1])
            if code == "NoSuchBucket":
                return BlobStoreError(
                    f"cannot {doing}: bucket {self.bucket!r} does not exist at "
                    f"{self.endpoint or 'AWS'} (create it, or add create_bucket=true to the URL)"
                )
            if code in _FULL:
                return BlobStoreFull(f"cannot {doing}: {where} is full ({code}: {message})")
            if code in _BUSY or status >= 500:
                return BlobStoreUnavailable(f"cannot {doing}: {where} failed ({code}: {message})")
            return BlobStoreError(f"cannot {doing} in {where}: {code}: {message}")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return BlobStoreError(
                f"cannot {doing}: no S3 credentials for {where} (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or a profile)"
            )
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            return BlobStoreUnavailable(f"cannot {doing}: {where} does not answer ({exc})")
        return BlobStoreError(f"cannot {doing} in {where}: {exc}")


class _MultipartUpload:
    """One multipart upload: parts are added in order, then completed (or aborted)."""

    def __init__(self, store: S3BlobStore, name: str) -> None:
        self.store = store
        self.name = name
        self.parts: list[dict[str, Any]] = []
        self.digests: list[bytes] = []
        extra = {"ChecksumAlgorithm": "SHA256"} if store.checksum else {}
        reply = store._client.create_multipart_upload(Bucket=store.bucket, Key=name, **extra)
        self.upload_id = str(reply["UploadId"])

    def add(self, body: bytes) -> None:
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise BlobStoreError(f"{self.name}: over {MAX_PARTS} parts (raise part_mb)")
        part: dict[str, Any] = {"PartNumber": number}
        extra: dict[str, str] = {}
        if self.store.checksum:
            digest = hashlib.sha256(body).digest()
            self.digests.append(digest)
            extra["ChecksumSHA256"] = part["ChecksumSHA256"] = base64.b64encode(digest).decode()
        reply = self.store._client.upload_part(
            Bucket=self.store.bucket,
            Key=self.name,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
            **extra,
        )
        reported = reply.get("ChecksumSHA256")
        if reported and reported != part.get("ChecksumSHA256", reported):
            raise BlobStoreError(f"{self.name}: part {number} stored with checksum {reported}")
        part["ETag"] = reply["ETag"]
        self.parts.append(part)

    def complete(self, size: int) -> None:
        store = self.store
        reply = store._client.complete_multipart_upload(
            Bucket=store.bucket,
            Key=self.name,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        self.upload_id = ""  # completed: nothing to abort any more
        problem = ""
        reported = str(reply.get("ChecksumSHA256") or "").split("-")[0]
        if self.digests and reported:
            composite = base64.b64encode(hashlib.sha256(b"".join(self.digests)).digest()).decode()
            if reported != composite:
                problem = f"composite checksum {reported}, expected {composite}"
        if not problem:
            head = store._client.head_object(Bucket=store.bucket, Key=self.name)
            if int(head["ContentLength"]) != size:
                problem = f"{head['ContentLength']} bytes stored, {size} sent"
        if problem:
            store._discard(self.name)
            raise BlobStoreError(f"{self.name}: {problem}")

    def abort(self) -> None:
        if self.upload_id:
            _abort(self.store._client, self.store.bucket, self.name, self.upload_id)
            self.upload_id = ""


class _ObjectReader(io.RawIOBase):
    """A seekable raw stream over one object: a GET streamed in order; a seek elsewhere
    re-opens at that offset (a ranged GET); a lost connection resumes at the same offset."""

    def __init__(self, store: S3BlobStore, key: str, name: str, reply: dict[str, Any]) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._name = name
        self._body: Any = reply["Body"]
        self._size = int(reply["ContentLength"])
        self._etag = str(reply.get("ETag") or "")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError("negative seek position")
        if target != self._position:
            self._drop_body()
            self._position = target
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                if self._body is None:
                    reply = self._store._get(self._name, self._key, self._position, self._etag)
                    self._body = reply["Body"]
                data: bytes = self._body.read(wanted)
                break
            except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
                self._drop_body()
                if attempt == _READ_ATTEMPTS:
                    raise self._store._error(exc, f"read {self._key}") from exc
                log.warning("reading %s: %s; resuming at byte %d", self._key, exc, self._position)
        if not data:
            raise BlobStoreError(f"{self._key}: stream ended at byte {self._position}")
        count = len(data)
        buffer[:count] = data
        self._position += count
        return count

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


def _abort(client: Any, bucket: str, name: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload_id)
    except (BotoCoreError, ClientError) as exc:  # logged: the upload stays pending
        log.error("cannot abort the multipart upload of %s: %s", name, exc)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_key(text: str) -> bool:
    try:
        check_key(text)
    except BlobStoreError:
        return False
    return True


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


__all__ = ["S3BlobStore"]
