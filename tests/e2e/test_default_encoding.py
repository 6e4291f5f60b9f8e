"""Data sets without Specific Character Set, read with the default encoding (Orthanc's
``DefaultEncoding``): a modality writing Vietnamese names in UTF-8 without declaring it.

With ``[server] default_encoding = "Utf8"`` every door shows the names right: DCMTK
findscu (matching and answers), QIDO-RS and WADO-RS metadata through dicomweb-client,
Orthanc's resources, tags and ``/tools/find``; the stored file is untouched; and our
answers equal a real Orthanc's configured the same way. With the default (Latin1), the
same bytes read as Latin-1 (as in Orthanc) until ``PUT /tools/default-encoding`` changes
it while the server runs; ``/reconstruct`` then re-reads what was indexed before.
"""

from __future__ import annotations

import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs.core.ids import public_id
from tests.conftest import RunningServer, run_pacs, start_server
from tests.e2e.helpers import HOST, dataset_bytes, findscu, require_dcmtk, run
from tests.factories import make_image, write
from tests.orthanc_compat.real_orthanc import running_orthanc

pytestmark = pytest.mark.integration

NAME = "Nguyễn^Văn An"
DESCRIPTION = "Chụp X quang ngực thẳng"
REFERRING = "Trần^Thị Bình"


def _undeclared_utf8(patient_id: str, name: str = NAME) -> Dataset:
    """An instance whose text is UTF-8 with no Specific Character Set, a nested item too."""
    ds = make_image(
        patient_id=patient_id,
        patient_name=name.encode("utf-8"),  # type: ignore[arg-type]  # bytes kept as they are
        study_description=DESCRIPTION.encode("utf-8"),  # type: ignore[arg-type]
    )
    ds.ReferringPhysicianName = REFERRING.encode("utf-8")
    item = Dataset()
    item.PatientName = name.encode("utf-8")
    item.PatientID = f"{patient_id}-OLD"
    ds.OtherPatientIDsSequence = Sequence([item])
    assert "SpecificCharacterSet" not in ds
    return ds


def _store(server: RunningServer, folder: Path, ds: Dataset) -> Path:
    tools = require_dcmtk("storescu")
    path = write(ds, folder)
    sent = run([tools["storescu"], HOST, str(server.dimse_port), str(path)])
    assert sent.returncode == 0, sent.stderr
    return path


def _url(server: RunningServer) -> str:
    return f"http://{HOST}:{server.http_port}"


def _ids(ds: Dataset) -> tuple[str, str]:
    """Orthanc's public ids of the study and the instance."""
    patient, study = str(ds.PatientID), str(ds.StudyInstanceUID)
    series, sop = str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    return public_id(patient, study), public_id(patient, study, series, sop)


def _alphabetic(attributes: dict[str, Any], tag: str) -> str:
    return str(attributes[tag]["Value"][0]["Alphabetic"])


def test_utf8_default_reads_right_at_every_door_as_orthanc_does(tmp_path: Path) -> None:
    tools = require_dcmtk("findscu")
    server = start_server(tmp_path, server_options='default_encoding = "Utf8"')
    try:
        ds = _undeclared_utf8("VN-UTF8")
        path = _store(server, tmp_path / "in", ds)
        study_id, instance_id = _ids(ds)
        url = _url(server)
        assert requests.get(f"{url}/tools/default-encoding", timeout=30).text == "Utf8"

        # DCMTK findscu: the answer declares UTF-8 and holds the name; matching by it works
        keys = {"QueryRetrieveLevel": "STUDY", "PatientID": "VN-UTF8", "PatientName": ""}
        keys |= {"StudyDescription": "", "ReferringPhysicianName": ""}
        result, answers = findscu(tools["findscu"], server.dimse_port, keys, tmp_path / "f1")
        assert result.returncode == 0 and len(answers) == 1, result.stderr
        assert str(answers[0].PatientName) == NAME
        assert answers[0].StudyDescription == DESCRIPTION
        assert str(answers[0].ReferringPhysicianName) == REFERRING
        keys = {"QueryRetrieveLevel": "STUDY", "SpecificCharacterSet": "ISO_IR 192"}
        keys |= {"PatientName": "Nguyễn^Văn*", "PatientID": ""}
        result, answers = findscu(tools["findscu"], server.dimse_port, keys, tmp_path / "f2")
        assert [a.PatientID for a in answers] == ["VN-UTF8"], result.stdout + result.stderr

        # dicomweb-client: QIDO-RS from the index, WADO-RS metadata from the stored header
        client = DICOMwebClient(f"{url}/dicom-web")
        (study,) = client.search_for_studies(search_filters={"PatientID": "VN-UTF8"})
        assert _alphabetic(study, "00100010") == NAME
        assert study["00081030"]["Value"] == [DESCRIPTION]
        (metadata,) = client.retrieve_study_metadata(str(ds.StudyInstanceUID))
        assert _alphabetic(metadata, "00100010") == NAME
        assert _alphabetic(metadata["00101002"]["Value"][0], "00100010") == NAME
        assert "00080005" not in metadata  # shown as read, not declared

        # Orthanc's API: main tags, tags of the file, /tools/find by the name
        ours = requests.get(f"{url}/studies/{study_id}", timeout=30).json()
        assert ours["PatientMainDicomTags"]["PatientName"] == NAME
        assert ours["MainDicomTags"]["StudyDescription"] == DESCRIPTION
        tags = requests.get(f"{url}/instances/{instance_id}/simplified-tags", timeout=30).json()
        assert tags["PatientName"] == NAME and tags["ReferringPhysicianName"] == REFERRING
        assert tags["OtherPatientIDsSequence"][0]["PatientName"] == NAME
        found = requests.post(
            f"{url}/tools/find",
            json={"Level": "Study", "Query": {"PatientName": "nguyễn*"}},
            timeout=30,
        ).json()
        assert found == [study_id]

        # the stored data set is the one sent, byte for byte
        stored = tmp_path / "stored.dcm"
        stored.write_bytes(requests.get(f"{url}/instances/{instance_id}/file", timeout=30).content)
        assert dataset_bytes(stored) == dataset_bytes(path)

        # a real Orthanc configured alike answers the same
        (tmp_path / "orthanc").mkdir()
        with running_orthanc(tmp_path / "orthanc", DefaultEncoding="Utf8") as orthanc:
            posted = requests.post(f"{orthanc}/instances", data=path.read_bytes(), timeout=30)
            assert posted.status_code == 200, posted.text
            theirs = requests.get(f"{orthanc}/studies/{study_id}", timeout=30).json()
            assert theirs["PatientMainDicomTags"] == ours["PatientMainDicomTags"]
            assert theirs["MainDicomTags"]["StudyDescription"] == DESCRIPTION
            their_tags = requests.get(
                f"{orthanc}/instances/{instance_id}/simplified-tags", timeout=30
            ).json()
            for keyword in ("PatientName", "StudyDescription", "ReferringPhysicianName"):
                assert their_tags[keyword] == tags[keyword], keyword
            assert their_tags["OtherPatientIDsSequence"] == tags["OtherPatientIDsSequence"]
    finally:
        server.stop()


def test_changing_the_default_encoding_while_the_server_runs(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        url = _url(server)
        first = _undeclared_utf8("VN-BEFORE")
        _store(server, tmp_path / "a", first)
        study_id, _ = _ids(first)
        as_latin1 = NAME.encode("utf-8").decode("latin-1")
        assert requests.get(f"{url}/tools/default-encoding", timeout=30).text == "Latin1"
        resource = requests.get(f"{url}/studies/{study_id}", timeout=30).json()
        assert resource["PatientMainDicomTags"]["PatientName"] == as_latin1
        metadata_url = f"{url}/dicom-web/studies/{first.StudyInstanceUID}/metadata"
        before = requests.get(metadata_url, timeout=30)
        assert _alphabetic(before.json()[0], "00100010") == as_latin1

        changed = requests.put(f"{url}/tools/default-encoding", data="Utf8", timeout=30)
        assert changed.status_code == 200 and changed.text == "Utf8"
        time.sleep(1.5)  # the DICOM listener re-reads the shared settings within a second

        # headers are read with the new default at once (a new ETag: caches refetch) ...
        after = requests.get(metadata_url, headers={"If-None-Match": before.headers["ETag"]})
        assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
        assert _alphabetic(after.json()[0], "00100010") == NAME
        # ... what the index took at ingest stays as it was (as Orthanc's main tags) ...
        resource = requests.get(f"{url}/studies/{study_id}", timeout=30).json()
        assert resource["PatientMainDicomTags"]["PatientName"] == as_latin1
        # ... until reconstructed (as Orthanc: an empty text answer; unknown ids 404) ...
        rebuilt = requests.post(f"{url}/studies/{study_id}/reconstruct", timeout=60)
        assert (rebuilt.status_code, rebuilt.text) == (200, "")
        resource = requests.get(f"{url}/studies/{study_id}", timeout=30).json()
        assert resource["PatientMainDicomTags"]["PatientName"] == NAME
        assert resource["MainDicomTags"]["StudyDescription"] == DESCRIPTION
        missing = requests.post(f"{url}/studies/nope/reconstruct", timeout=30)
        assert missing.status_code == 404 and missing.json()["OrthancStatus"] == 17
        assert requests.post(f"{url}/tools/reconstruct", timeout=60).status_code == 200
        # ... and what arrives now is indexed with it
        second = _undeclared_utf8("VN-AFTER", name="Lê^Thị Hồng")
        _store(server, tmp_path / "b", second)
        second_study, _ = _ids(second)
        resource = requests.get(f"{url}/studies/{second_study}", timeout=30).json()
        assert resource["PatientMainDicomTags"]["PatientName"] == "Lê^Thị Hồng"

        # a modified copy declares the encoding its text was read with
        modified = requests.post(
            f"{url}/studies/{study_id}/modify",
            json={"Replace": {"StudyDescription": "Chụp lại"}},
            timeout=60,
        )
        assert modified.status_code == 200, modified.text
        new_study = modified.json()["ID"]
        (instance,) = requests.get(f"{url}/studies/{new_study}/instances", timeout=30).json()
        raw = requests.get(f"{url}/instances/{instance['ID']}/file", timeout=30).content
        copy = dcmread(BytesIO(raw))
        assert copy.SpecificCharacterSet == "ISO_IR 192"
        assert str(copy.PatientName) == NAME and copy.StudyDescription == "Chụp lại"
        assert str(copy.OtherPatientIDsSequence[0].PatientName) == NAME
        resource = requests.get(f"{url}/studies/{new_study}", timeout=30).json()
        assert resource["PatientMainDicomTags"]["PatientName"] == NAME
    finally:
        server.stop()


def test_pacs_reconstruct_after_changing_the_configuration(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(tmp_path, data_dir=data_dir)
    try:
        ds = _undeclared_utf8("VN-CLI")
        _store(server, tmp_path / "in", ds)
    finally:
        server.stop()
    config = tmp_path / "utf8.toml"
    config.write_text(
        f'[server]\ndata_dir = "{data_dir}"\ndefault_encoding = "Utf8"\n', encoding="utf-8"
    )

    unknown = run_pacs(config, "reconstruct", "--study", "1.2.3.4")
    assert unknown.returncode == 1 and "unknown study 1.2.3.4" in unknown.stderr
    done = run_pacs(config, "reconstruct", "--study", str(ds.StudyInstanceUID))
    assert done.returncode == 0 and "1 instances read again" in done.stdout, done.stderr
    again = start_server(
        tmp_path, name="again", data_dir=data_dir, server_options='default_encoding = "Utf8"'
    )
    try:
        study_id, _ = _ids(ds)
        resource = requests.get(f"{_url(again)}/studies/{study_id}", timeout=30).json()
        assert resource["PatientMainDicomTags"]["PatientName"] == NAME
    finally:
        again.stop()


def test_an_unknown_default_encoding_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\ndefault_encoding = "Klingon"\n', encoding="utf-8")
    result = run_pacs(config, "check-config")
    assert result.returncode != 0
    assert "default_encoding" in result.stderr and "Utf8" in result.stderr
