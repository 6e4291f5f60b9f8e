"""S3 blob store throughput against a local S3 server: put and get of 100 x 1 MB and of one
200 MB blob (multipart), in MB/s, with the filesystem store beside it for scale.

    python benchmarks/bench_s3.py                        # starts moto_server on a free port
    python benchmarks/bench_s3.py --endpoint http://127.0.0.1:9000 --bucket bench
                                                         # an existing server (MinIO...)

Credentials come from the AWS environment variables (set to dummies when moto is started
here). moto keeps objects in its own process's memory: the figures measure our client, boto3
and the HTTP path more than a storage back end, and a real server differs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from storage import BlobStore, FileSystemBlobStore, digest_blob, new_key, open_blob_store

MB = 1 << 20


def chunks(size: int, seed: int) -> Iterator[bytes]:
    """``size`` bytes of varied content, 1 MiB at a time."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MB // 32)
    sent = 0
    while sent < size:
        piece = block[: min(MB, size - sent)]
        sent += len(piece)
        yield piece


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(store: BlobStore, count: int, size: int) -> tuple[float, float]:
    """(put MB/s, get MB/s) for ``count`` blobs of ``size`` bytes, read back whole."""
    keys = [new_key() for _ in range(count)]

    def put_all() -> None:
        for number, key in enumerate(keys):
            store.put(key, chunks(size, number))

    def get_all() -> None:
        for key in keys:
            digest_blob(store, key)  # streamed in 1 MiB reads, as verify and copies read

    put_seconds = timed(put_all)
    get_seconds = timed(get_all)
    for key in keys:
        store.delete(key)
    total = count * size / 1e6
    return total / put_seconds, total / get_seconds


def start_moto(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    program = shutil.which("moto_server")
    if program is None:
        raise SystemExit("moto_server is not installed (pip install 'moto[server]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [program, "-H", "127.0.0.1", "-p", str(port)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto_server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="an S3 server already running (default: start moto)")
    parser.add_argument("--bucket", default=f"bench-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--part-mb", type=float, default=8)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    process = None
    try:
        endpoint = args.endpoint
        if endpoint is None:
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                os.environ.setdefault(name, "bench")
            process, endpoint = start_moto(scratch)
        url = (
            f"s3://{args.bucket}/bench?endpoint={endpoint}&create_bucket=true"
            f"&part_mb={args.part_mb}"
        )
        stores: dict[str, BlobStore] = {
            "s3": open_blob_store(url),
            "filesystem": FileSystemBlobStore(scratch / "blobs"),
        }
        print(f"S3 server: {'moto_server (started here)' if process else endpoint}")
        for name, store in stores.items():
            for count, size in ((100, MB), (1, 200 * MB)):
                put, get = measure(store, count, size)
                print(
                    f"{name:10} {count:3} x {size // MB:3} MB: "
                    f"put {put:7.1f} MB/s, get {get:7.1f} MB/s"
                )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=15)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
