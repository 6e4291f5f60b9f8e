"""QIDO-RS against a running server, with the dicomweb-client package as the client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dicomweb_client.api import DICOMwebClient

from tests.conftest import RunningServer
from tests.e2e.helpers import serve, store
from tests.factories import make_radiograph, make_series, new_uid


@dataclass
class Site:
    server: RunningServer
    client: DICOMwebClient
    study: str
    series: str
    vietnamese_study: str

    def get(self, path: str) -> tuple[int, object]:
        url = f"http://127.0.0.1:{self.server.http_port}/dicom-web{path}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status, json.loads(response.read() or b"[]")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve(tmp_path_factory, "qido") as server:
        study = new_uid()
        ct = make_series(
            3,
            study_uid=study,
            patient_id="P1",
            patient_name="Doe^John",
            study_date="20240110",
            accession="CT1",
        )
        cr = [
            make_radiograph(
                patient_id="079123456789",
                patient_name="Nguyễn^Văn A",
                charset="ISO_IR 192",
                study_date="20240220",
                accession="XR1",
            )
        ]
        assert store(server.dimse_port, ct + cr) == [0, 0, 0, 0]
        client = DICOMwebClient(url=f"http://127.0.0.1:{server.http_port}/dicom-web")
        yield Site(server, client, study, str(ct[0].SeriesInstanceUID), str(cr[0].StudyInstanceUID))


def _values(answers: list[dict], tag: str) -> list:
    return [a[tag]["Value"][0] for a in answers if "Value" in a.get(tag, {})]


def test_search_studies_with_default_attributes(site: Site) -> None:
    studies = site.client.search_for_studies()
    assert len(studies) == 2
    by_accession = {s["00080050"]["Value"][0]: s for s in studies}
    ct = by_accession["CT1"]
    assert ct["0020000D"] == {"vr": "UI", "Value": [site.study]}
    assert ct["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}
    assert ct["00201208"]["Value"] == [3]
    assert ct["00080061"]["Value"] == ["CT"]


def test_names_match_without_diacritics_and_come_back_intact(site: Site) -> None:
    for pattern in ("nguyen^van*", "NGUYEN*", "Nguyễn*"):
        studies = site.client.search_for_studies(search_filters={"PatientName": pattern})
        assert _values(studies, "0020000D") == [site.vietnamese_study], pattern
        assert studies[0]["00100010"]["Value"][0]["Alphabetic"] == "Nguyễn^Văn A"


def test_percent_encoded_wildcards_and_hex_tags(site: Site) -> None:
    status, body = site.get("/studies?00100010=nguy%E1%BB%85n%5Ev%C4%83n%2A")
    assert status == 200 and _values(body, "00080050") == ["XR1"]  # type: ignore[arg-type]
    status, body = site.get("/studies?StudyDate=20240101-20240131")
    assert status == 200 and _values(body, "00080050") == ["CT1"]  # type: ignore[arg-type]


def test_series_and_instances_nested(site: Site) -> None:
    series = site.client.search_for_series(study_instance_uid=site.study)
    assert _values(series, "0020000E") == [site.series]
    assert series[0]["00201209"]["Value"] == [3]
    instances = site.client.search_for_instances(
        study_instance_uid=site.study, series_instance_uid=site.series
    )
    assert sorted(_values(instances, "00200013")) == [1, 2, 3]
    assert all(i["00280010"]["Value"] == [16] for i in instances)


def test_limit_offset_and_includefield(site: Site) -> None:
    everything = site.client.search_for_instances()
    page = site.client.search_for_instances(limit=2, offset=1)
    assert len(everything) == 4 and len(page) == 2
    assert page == everything[1:3]
    studies = site.client.search_for_studies(
        fields=["IssuerOfPatientID", "00081030"], search_filters={"AccessionNumber": "CT1"}
    )
    assert "00081030" in studies[0]
    status, body = site.get("/studies?includefield=all&limit=1")
    assert status == 200 and "00080062" in body[0]  # type: ignore[index]


@pytest.mark.parametrize(
    "path",
    [
        "/studies?NoSuchAttribute=1",
        "/studies?limit=-1",
        "/studies?fuzzymatching=maybe",
        "/studies/not-a-uid/series",
        "/studies?00100010.00100020=x",
    ],
)
def test_bad_requests_get_400_with_a_reason(site: Site, path: str) -> None:
    status, body = site.get(path)
    assert status == 400
    assert "error" in body  # type: ignore[operator]
