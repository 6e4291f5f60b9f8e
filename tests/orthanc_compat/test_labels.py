"""Labels: in the core (both index backends) and over Orthanc's label routes."""

from __future__ import annotations

import json

import pytest
import requests

from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery
from pacs.core.ids import public_id
from pacs.core.model import Level
from tests.factories import make_image, new_uid, to_bytes
from tests.orthanc_compat.conftest import Stored, post


def test_labels_in_the_core(archive: Archive) -> None:
    studies = [make_image(patient_id="L1", study_uid=new_uid()) for _ in range(3)]
    for ds in studies:
        archive.store(to_bytes(ds), "test")
    pks = [
        archive.resources.get(Level.STUDY, public_id("L1", str(ds.StudyInstanceUID))).pk
        for ds in studies
    ]
    archive.labels.add(Level.STUDY, pks[0], "ai-abnormal")
    archive.labels.add(Level.STUDY, pks[0], "ai-abnormal")  # twice: no error, no duplicate
    archive.labels.add(Level.STUDY, pks[0], "urgent")
    archive.labels.add(Level.STUDY, pks[1], "urgent")
    assert archive.labels.labels(Level.STUDY, pks[0]) == ["ai-abnormal", "urgent"]
    assert archive.labels.all_labels() == ["ai-abnormal", "urgent"]
    select = archive.labels.select
    assert select(Level.STUDY, pks, ["ai-abnormal", "urgent"], "All") == [pks[0]]
    assert select(Level.STUDY, pks, ["ai-abnormal", "urgent"], "Any") == pks[:2]
    assert select(Level.STUDY, pks, ["urgent"], "None") == [pks[2]]
    archive.labels.remove(Level.STUDY, pks[1], "urgent")
    assert archive.labels.labels(Level.STUDY, pks[1]) == []
    with pytest.raises(InvalidQuery):
        archive.labels.add(Level.STUDY, pks[1], "no spaces")
    archive.delete(Level.STUDY, public_id("L1", str(studies[0].StudyInstanceUID)))
    assert archive.labels.all_labels() == []  # gone with the study


def test_label_routes_and_find(stored: Stored) -> None:
    one, two = make_image(patient_id="LBL"), make_image(patient_id="LBL")
    ids = [post(stored.url, ds).json()["ParentStudy"] for ds in (one, two)]
    base = f"{stored.url}/studies/{ids[0]}/labels"
    assert requests.put(f"{base}/ai-normal", timeout=30).status_code == 200
    assert requests.get(base, timeout=30).json() == ["ai-normal"]
    assert requests.get(f"{base}/ai-normal", timeout=30).status_code == 200
    assert requests.get(f"{base}/other", timeout=30).status_code == 404
    assert requests.put(f"{base}/bad%20label", timeout=30).status_code == 400
    assert "ai-normal" in requests.get(f"{stored.url}/tools/labels", timeout=30).json()

    def find(labels: list[str], constraint: str) -> list[str]:
        body = {
            "Level": "Study",
            "Query": {"PatientID": "LBL"},
            "Labels": labels,
            "LabelsConstraint": constraint,
        }
        response = requests.post(f"{stored.url}/tools/find", data=json.dumps(body), timeout=30)
        assert response.status_code == 200, response.text
        return sorted(response.json())

    assert find(["ai-normal"], "All") == [ids[0]]
    assert find(["ai-normal"], "None") == [ids[1]]
    assert find([], "All") == sorted(ids)
    assert requests.delete(f"{base}/ai-normal", timeout=30).status_code == 200
    assert requests.get(base, timeout=30).json() == []
    missing = requests.get(f"{stored.url}/studies/{public_id('x')}/labels", timeout=30)
    assert missing.status_code == 404
