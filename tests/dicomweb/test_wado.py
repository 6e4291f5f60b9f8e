"""WADO-RS retrieve and metadata against a running server, with dicomweb-client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from requests.exceptions import HTTPError

from tests.e2e.helpers import serve, store
from tests.factories import make_image, make_series, new_uid


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DICOMwebClient, list]]:
    with serve(tmp_path_factory, "wado") as server:
        series = make_series(
            3,
            study_uid=new_uid(),
            rows=32,
            columns=32,
            patient_name="Nguyễn^Văn A",
            charset="ISO_IR 192",
        )
        assert store(server.dimse_port, series) == [0, 0, 0]
        yield DICOMwebClient(url=f"http://127.0.0.1:{server.http_port}/dicom-web"), series


def _by_uid(datasets: list[Dataset]) -> dict[str, Dataset]:
    return {str(ds.SOPInstanceUID): ds for ds in datasets}


def test_retrieve_study_series_and_instance(stored: tuple[DICOMwebClient, list]) -> None:
    client, series = stored
    study_uid, series_uid = str(series[0].StudyInstanceUID), str(series[0].SeriesInstanceUID)
    sent = _by_uid(series)
    for got in (
        client.retrieve_study(study_uid),
        client.retrieve_series(study_uid, series_uid),
        [client.retrieve_instance(study_uid, series_uid, str(series[1].SOPInstanceUID))],
    ):
        assert got
        for ds in got:
            original = sent[str(ds.SOPInstanceUID)]
            assert ds.PixelData == original.PixelData
            assert str(ds.PatientName) == "Nguyễn^Văn A"
    assert len(client.retrieve_study(study_uid)) == 3


def test_series_metadata_is_dicom_json_without_pixels(stored: tuple[DICOMwebClient, list]) -> None:
    client, series = stored
    metadata = client.retrieve_series_metadata(
        str(series[0].StudyInstanceUID), str(series[0].SeriesInstanceUID)
    )
    assert len(metadata) == 3
    first = metadata[0]
    assert first["00100010"]["Value"][0]["Alphabetic"] == "Nguyễn^Văn A"
    assert first["00280010"] == {"vr": "US", "Value": [32]}
    assert "BulkDataURI" in first["7FE00010"] and "InlineBinary" not in first["7FE00010"]
    ds = Dataset.from_json(first)
    assert ds.SOPInstanceUID in {str(s.SOPInstanceUID) for s in series}


def test_unknown_and_invalid_uids(stored: tuple[DICOMwebClient, list]) -> None:
    client, _ = stored
    with pytest.raises(HTTPError) as missing:
        client.retrieve_study(new_uid())
    assert missing.value.response.status_code == 404
    with pytest.raises(HTTPError) as invalid:
        client.retrieve_study_metadata("../../etc")
    assert invalid.value.response.status_code in (400, 404)


def test_caching_headers_and_cors(stored: tuple[DICOMwebClient, list]) -> None:

    client, series = stored
    base = client.base_url
    study, uid = str(series[0].StudyInstanceUID), str(series[0].SeriesInstanceUID)
    url = f"{base}/studies/{study}/series/{uid}/metadata"
    first = requests.get(url, headers={"Origin": "http://viewer.example"}, timeout=30)
    assert first.status_code == 200
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=30)
    assert again.status_code == 304
    instance = f"{base}/studies/{study}/series/{uid}/instances/{series[0].SOPInstanceUID}"
    one = requests.get(instance, timeout=30)
    assert "immutable" in one.headers["Cache-Control"]
    preflight = requests.options(
        instance,
        headers={
            "Origin": "http://viewer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "accept",
        },
        timeout=30,
    )
    assert preflight.status_code == 204
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]


def test_metadata_follows_new_instances(stored: tuple[DICOMwebClient, list]) -> None:
    """A cached series metadata response is never served after the series changed."""
    client, series = stored
    study, uid = str(series[0].StudyInstanceUID), str(series[0].SeriesInstanceUID)
    before = client.retrieve_series_metadata(study, uid)
    again = client.retrieve_series_metadata(study, uid)
    assert again == before
    extra = make_image(study_uid=study, series_uid=uid, rows=32, columns=32, instance_number=9)
    client.store_instances([extra])
    after = client.retrieve_series_metadata(study, uid)
    assert len(after) == len(before) + 1
