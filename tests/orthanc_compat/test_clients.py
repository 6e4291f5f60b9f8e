"""The PyPI Orthanc clients (pyorthanc, orthanc-api-client) driving our server unchanged."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pyorthanc
import pytest
from orthanc_api_client import OrthancApiClient
from orthanc_api_client.capabilities import Capabilities
from pydicom import dcmread

from tests.conftest import wait_for_port
from tests.e2e.helpers import serve
from tests.factories import make_image, make_series, new_uid, to_bytes


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory, "clients") as server:
        wait_for_port(server.http_port, process=server.process)
        yield f"http://127.0.0.1:{server.http_port}"


def test_orthanc_api_client(url: str) -> None:
    client = OrthancApiClient(url)
    assert client.wait_started(timeout=10)
    assert client.is_orthanc_version_at_least(1, 10, 0)
    capabilities = Capabilities(client)  # what a client reads to gate 1.12 features
    assert capabilities.has_label_support and capabilities.has_extended_find
    assert not capabilities.has_extended_changes and not capabilities.has_revision_support
    study_uid = new_uid()
    series = make_series(2, study_uid=study_uid, patient_id="OAC1", study_description="CHEST")
    [first_id] = client.upload(to_bytes(series[0]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("a.dcm", to_bytes(series[1]))
    assert len(client.upload(buffer.getvalue())) == 1
    [study_id] = client.lookup(study_uid)
    assert study_id in client.studies.get_all_ids()
    study = client.studies.get(study_id)
    assert study.main_dicom_tags.get("StudyInstanceUID") == study_uid
    assert study.patient_main_dicom_tags.get("PatientID") == "OAC1"
    assert len(client.studies.get_instances_ids(study_id)) == 2
    found = client.studies.find(query={"PatientID": "OAC1"}, case_sensitive=False)
    assert [s.orthanc_id for s in found] == [study_id]
    tags = client.instances.get_tags(first_id)
    assert tags["SOPInstanceUID"] == str(series[0].SOPInstanceUID)
    ds = dcmread(io.BytesIO(client.instances.get_file(first_id)))
    assert ds.SOPInstanceUID == series[0].SOPInstanceUID
    assert client.get_statistics().instances_count >= 2
    changes, last, done = client.get_changes()
    assert changes and last >= changes[-1].sequence_id and done


def test_pyorthanc(url: str) -> None:
    orthanc = pyorthanc.Orthanc(url)
    ds = make_image(patient_id="PYO1", patient_name="Tran^Van C", modality="CR")
    answer = orthanc.post_instances(to_bytes(ds))
    assert answer["Status"] == "Success"
    assert answer["ParentPatient"] in orthanc.get_patients()
    studies = pyorthanc.find_studies(orthanc, query={"PatientName": "tran*"})
    assert len(studies) == 1
    study = studies[0]
    assert study.uid == str(ds.StudyInstanceUID)
    assert study.patient_information["PatientID"] == "PYO1"
    [series] = study.series
    assert series.modality == "CR"
    [instance] = series.instances
    assert instance.uid == str(ds.SOPInstanceUID)
    assert instance.simplified_tags["PatientName"] == "Tran^Van C"
    assert instance.get_pydicom().SOPInstanceUID == ds.SOPInstanceUID
    patients = pyorthanc.find_patients(orthanc, query={"PatientID": "PYO1"})
    assert [p.patient_id for p in patients] == ["PYO1"]
    instances = pyorthanc.find_instances(orthanc, query={"SOPInstanceUID": str(ds.SOPInstanceUID)})
    assert [i.id_ for i in instances] == [answer["ID"]]
