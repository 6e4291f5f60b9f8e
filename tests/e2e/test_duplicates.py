"""``[dimse] duplicate_policy``: the same SOP Instance UID sent twice, under each policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydicom.dataset import Dataset

from tests.conftest import RunningServer
from tests.e2e.helpers import (
    association,
    c_get,
    find,
    query,
    serve,
    store,
    transfer_syntax_of,
)
from tests.factories import make_image, new_uid


@pytest.fixture(scope="module", params=["ignore", "replace", "reject"])
def policy_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, RunningServer]]:
    """One server per duplicate policy."""
    policy = str(request.param)
    with serve(
        tmp_path_factory, f"dup-{policy}", dimse_options=f'duplicate_policy = "{policy}"'
    ) as running:
        yield policy, running


@dataclass
class Pair:
    """Two versions of one SOP instance and what C-STORE answered to each."""

    first: Dataset
    second: Dataset
    statuses: list[int]


def _versions(patient_id: str) -> tuple[Dataset, Dataset]:
    common: dict[str, Any] = {
        "patient_id": patient_id,
        "study_uid": new_uid(),
        "series_uid": new_uid(),
        "sop_uid": new_uid(),
    }
    first = make_image(instance_number=1, pixel_seed=1, ImageComments="first version", **common)
    second = make_image(instance_number=2, pixel_seed=2, ImageComments="second version", **common)
    return first, second


def _send_twice(port: int, patient_id: str, same_association: bool) -> Pair:
    first, second = _versions(patient_id)
    if not same_association:
        return Pair(first, second, store(port, [first]) + store(port, [second]))
    contexts = [(str(first.SOPClassUID), [transfer_syntax_of(first)])]
    statuses = []
    with association(port, contexts) as assoc:
        for ds in (first, second):
            answer = assoc.send_c_store(ds)
            statuses.append(int(answer.Status) if "Status" in answer else -1)
    return Pair(first, second, statuses)


def _stored_version(port: int, ds: Dataset) -> tuple[list[Dataset], Dataset]:
    """IMAGE-level C-FIND answers for the instance, and the instance fetched by C-GET."""
    status, answers = find(
        port,
        query(
            "IMAGE",
            StudyInstanceUID=ds.StudyInstanceUID,
            SeriesInstanceUID=ds.SeriesInstanceUID,
            SOPInstanceUID="",
            InstanceNumber="",
            ImageComments="",
        ),
    )
    assert status == 0
    final, _, got = c_get(
        port,
        query(
            "IMAGE",
            StudyInstanceUID=ds.StudyInstanceUID,
            SeriesInstanceUID=ds.SeriesInstanceUID,
            SOPInstanceUID=ds.SOPInstanceUID,
        ),
        [str(ds.SOPClassUID)],
        [transfer_syntax_of(ds)],
    )
    assert int(final.Status) == 0, f"C-GET final 0x{int(final.Status):04X}"
    assert list(got) == [str(ds.SOPInstanceUID)]
    return answers, got[str(ds.SOPInstanceUID)]


@pytest.mark.parametrize("same_association", [False, True], ids=["two-assocs", "one-assoc"])
def test_duplicate_policy(policy_node: tuple[str, RunningServer], same_association: bool) -> None:
    """ignore: both Success, first kept; replace: both Success, second kept;
    reject: the second gets 0x0111 and the first stays."""
    policy, node = policy_node
    pair = _send_twice(node.dimse_port, f"DUP-{policy}-{same_association}", same_association)
    answers, fetched = _stored_version(node.dimse_port, pair.first)
    assert len(answers) == 1, "one SOP instance must be indexed once"
    kept = pair.second if policy == "replace" else pair.first
    if policy == "reject":
        assert pair.statuses == [0x0000, 0x0111]
    else:
        assert pair.statuses == [0x0000, 0x0000]
    assert int(answers[0].InstanceNumber) == int(kept.InstanceNumber)
    assert answers[0].ImageComments == kept.ImageComments
    assert fetched.ImageComments == kept.ImageComments
    assert fetched.PixelData == kept.PixelData


def test_no_orphan_blob_after_duplicates(policy_node: tuple[str, RunningServer]) -> None:
    """Whatever the policy, one SOP instance sent twice leaves exactly one blob file."""
    policy, node = policy_node
    blobs = node.data_dir / "blobs"
    before = {p for p in blobs.rglob("*") if p.is_file()} if blobs.exists() else set()
    _send_twice(node.dimse_port, f"DUP-BLOB-{policy}", same_association=False)
    after = {p for p in blobs.rglob("*") if p.is_file()}
    assert len(after - before) == 1, sorted(str(p) for p in after - before)
