"""gzip of DICOM JSON (QIDO-RS, metadata) where it pays, never of multipart payloads; the
gzip representation has its own strong ETag, and either ETag revalidates."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.e2e.helpers import serve
from tests.factories import make_series, new_uid

STUDY = new_uid()
SERIES = new_uid()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory, "gzip") as server:
        url = f"http://127.0.0.1:{server.http_port}/dicom-web"
        series = make_series(20, study_uid=STUDY, series_uid=SERIES, rows=8, columns=8)
        DICOMwebClient(url=url).store_instances(series)
        yield url


def _raw(url: str, encoding: str, **headers: str) -> requests.Response:
    """The response as sent (requests would otherwise inflate it silently)."""
    response = requests.get(
        url, headers={"Accept-Encoding": encoding, **headers}, stream=True, timeout=30
    )
    response.raw.decode_content = False
    response._content = response.raw.read()
    return response


def test_large_json_is_gzipped_only_when_asked(base: str) -> None:
    url = f"{base}/studies/{STUDY}/series/{SERIES}/metadata"
    plain = _raw(url, "identity")
    packed = _raw(url, "gzip, deflate")
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert (
        "Accept-Encoding" in packed.headers["Vary"] and "Accept-Encoding" in plain.headers["Vary"]
    )
    assert len(packed.content) < len(plain.content) / 5
    assert json.loads(gzip.decompress(packed.content)) == json.loads(plain.content)
    again = _raw(url, "gzip")  # from the cache: the same compressed bytes
    assert again.content == packed.content
    refused = _raw(url, "gzip;q=0")
    assert "Content-Encoding" not in refused.headers


def test_qido_is_gzipped_and_small_answers_are_not(base: str) -> None:
    many = _raw(f"{base}/studies/{STUDY}/instances", "gzip")
    assert many.headers["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(many.content))) == 20
    small = _raw(f"{base}/studies?PatientID=nobody", "gzip")
    assert small.status_code == 200
    assert "Content-Encoding" not in small.headers and small.content == b"[]"


def test_gzip_has_its_own_etag_and_either_revalidates(base: str) -> None:
    url = f"{base}/studies/{STUDY}/series/{SERIES}/metadata"
    plain, packed = _raw(url, "identity"), _raw(url, "gzip")
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert packed.headers["ETag"] == plain.headers["ETag"][:-1] + '-gzip"'
    for etag in (plain.headers["ETag"], packed.headers["ETag"], "W/" + plain.headers["ETag"]):
        revalidated = _raw(url, "gzip", **{"If-None-Match": etag})
        assert revalidated.status_code == 304
        assert revalidated.headers["ETag"] == packed.headers["ETag"]


def test_multipart_payloads_are_never_gzipped(base: str) -> None:
    response = _raw(f"{base}/studies/{STUDY}/series/{SERIES}", "gzip")
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.headers["Content-Type"].startswith("multipart/related")


def test_dicomweb_client_reads_gzipped_answers(base: str) -> None:
    client = DICOMwebClient(url=base)  # requests sends Accept-Encoding: gzip by default
    assert len(client.retrieve_series_metadata(STUDY, SERIES)) == 20
    assert len(client.search_for_instances(STUDY)) == 20
