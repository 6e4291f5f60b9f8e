"""A running server with a few stored instances, shared by the Orthanc API tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from pydicom.dataset import Dataset

from tests.conftest import RunningServer, wait_for_port
from tests.e2e.helpers import serve
from tests.factories import make_image, make_series, to_bytes


@dataclass
class Stored:
    """The server, its base URL, and what was stored in it."""

    server: RunningServer
    url: str
    ct: list[Dataset]
    other: Dataset


def post(url: str, ds: Dataset) -> requests.Response:
    """POST one instance to /instances."""
    return requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    with serve(tmp_path_factory, "orthanc") as server:
        wait_for_port(server.http_port, process=server.process)
        url = f"http://127.0.0.1:{server.http_port}"
        ct = make_series(
            3,
            patient_id="PAT001",
            study_uid="1.2.3.4",
            series_uid="1.2.3.4.5",
            rows=8,
            columns=8,
            InstitutionName="Bach Mai",
            Manufacturer="ACME",
        )
        other = make_image(
            patient_id="PAT002",
            patient_name="Nguyễn^Văn A",
            charset="ISO_IR 192",
            modality="MR",
            study_description="MR BRAIN",
            study_date="20230301",
            accession="ACC002",
        )
        for ds in [*ct, other]:
            assert post(url, ds).status_code == 200
        yield Stored(server, url, ct, other)
