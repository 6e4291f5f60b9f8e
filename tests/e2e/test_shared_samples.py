"""Every real sample file of ``../shared/data/dicom-samples`` sent by C-STORE, as received."""

from __future__ import annotations

import collections
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.conftest import RunningServer
from tests.e2e.helpers import (
    HOST,
    SERVER_AE,
    STUDY_ROOT_FIND,
    UNCOMPRESSED,
    assert_alive,
    association,
    make_ae,
    send_raw_store,
    serve,
)
from tests.factories import new_uid

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pydicom on odd sample files
]


@dataclass
class Sample:
    """One file of the manifest, split for sending."""

    path: Path
    sop_class: str
    sop_uid: str
    transfer_syntax: str
    body: bytes  # the data set bytes, as in the file
    readable: bool  # whether pydicom could read the UIDs from it


@dataclass
class Tally:
    """What became of every file."""

    stored: list[Sample] = field(default_factory=list)
    warned: list[tuple[Sample, int]] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    skipped: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    no_answer: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A fresh server for the samples."""
    with serve(tmp_path_factory, "samples") as running:
        yield running


def _split(raw: bytes) -> tuple[Dataset | None, bytes]:
    """(File Meta, data set bytes) of a Part 10 file; (None, raw) for a bare data set."""
    if raw[128:132] != b"DICM":
        return None, raw
    stream = BytesIO(raw)
    stream.seek(132)
    meta = _read_file_meta_info(stream)
    return meta, raw[stream.tell() :]


def _uid_text(value: object) -> str:
    return str(value or "").strip().rstrip("\x00").strip()


def _prepare(path: Path) -> Sample:
    """Read the UIDs and transfer syntax with pydicom (force), keep the bytes as they are."""
    raw = path.read_bytes()
    meta: Dataset | None
    try:
        meta, body = _split(raw)
    except Exception:
        meta, body = None, raw
    sop_class = sop_uid = syntax = ""
    readable = False
    try:
        ds = dcmread(BytesIO(raw), force=True, stop_before_pixels=True)
        sop_class = _uid_text(ds.get("SOPClassUID"))
        sop_uid = _uid_text(ds.get("SOPInstanceUID"))
        if meta is None:
            if ds.original_encoding[1] is False:
                syntax = str(ExplicitVRBigEndian)
            elif ds.original_encoding[0]:
                syntax = str(ImplicitVRLittleEndian)
            else:
                syntax = str(ExplicitVRLittleEndian)
        readable = bool(sop_uid)
    except Exception:
        pass
    if meta is not None:
        sop_class = sop_class or _uid_text(meta.get("MediaStorageSOPClassUID"))
        sop_uid = sop_uid or _uid_text(meta.get("MediaStorageSOPInstanceUID"))
        syntax = _uid_text(meta.get("TransferSyntaxUID"))
    return Sample(path, sop_class, sop_uid, syntax or str(ExplicitVRLittleEndian), body, readable)


_UID = re.compile(r"^[0-9.]{1,64}$")


def _reason(comment: str) -> str:
    """An error comment with its UIDs and numbers blurred, for grouping."""
    return re.sub(r"[0-9][0-9.x]*", "N", comment)[:60]


def _command_uids(sample: Sample) -> tuple[str, str]:
    """The SOP Class and Instance UIDs for the C-STORE request.

    A file whose UIDs cannot be read goes with placeholder UIDs in the request: the data set
    is sent all the same, and the server must judge it by its content."""
    sop_class = sample.sop_class if _UID.match(sample.sop_class) else ""
    sop_uid = sample.sop_uid if _UID.match(sample.sop_uid) else ""
    return sop_class or str(SecondaryCaptureImageStorage), sop_uid or new_uid()


def _send_batch(node: RunningServer, batch: list[Sample], tally: Tally) -> int:
    """Send the samples on one association; returns how many were dealt with (all, unless
    the association ended early: the rest go on a new one)."""
    ae = make_ae()
    ae.add_requested_context(Verification)
    commands = [_command_uids(sample) for sample in batch]
    proposed: set[tuple[str, str]] = set()
    for sample, (sop_class, _) in zip(batch, commands, strict=True):
        if (sop_class, sample.transfer_syntax) in proposed:
            continue
        try:
            ae.add_requested_context(sop_class, [sample.transfer_syntax])
            proposed.add((sop_class, sample.transfer_syntax))
        except Exception as exc:
            tally.skipped[f"cannot propose: {type(exc).__name__}"].append(str(sample.path))
    assoc = ae.associate(HOST, node.dimse_port, ae_title=SERVER_AE)
    done = 0
    try:
        if not assoc.is_established:
            tally.no_answer.append(f"{batch[0].path}: association not established")
            return 1
        accepted = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts
        }
        for sample, (sop_class, sop_uid) in zip(batch, commands, strict=True):
            if not assoc.is_established:
                return max(done, 1)
            done += 1
            name = str(sample.path)
            if (sop_class, sample.transfer_syntax) not in proposed:
                continue
            if (sop_class, sample.transfer_syntax) not in accepted:
                tally.skipped["context rejected by the server"].append(name)
                continue
            answer = send_raw_store(
                assoc, sop_class, sop_uid, sample.body, sample.transfer_syntax, msg_id=done
            )
            if "Status" not in answer:
                tally.no_answer.append(f"{name}: no C-STORE response")
                continue
            code = int(answer.Status)
            if code == 0:
                tally.stored.append(sample)
            elif code & 0xF000 == 0xB000:
                tally.warned.append((sample, code))
            else:
                comment = str(answer.get("ErrorComment", ""))
                tally.refused[f"0x{code:04X} {_reason(comment)}"].append(name)
            if not assoc.is_established:
                tally.no_answer.append(f"{name}: association ended after the response")
        return done
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _send_all(node: RunningServer, samples: list[Sample], tally: Tally) -> None:
    """Send every sample, 50 to an association."""
    pending = list(samples)
    while pending:
        done = _send_batch(node, pending[:50], tally)
        assert node.process.poll() is None, (
            f"server died near {pending[0].path}:\n{node.log_text()[-3000:]}"
        )
        pending = pending[done:]


def _found(node: RunningServer, uids: list[str]) -> set[str]:
    """The UIDs an IMAGE-level C-FIND with a UID list returns (in batches)."""
    found: set[str] = set()
    with association(node.dimse_port, [(STUDY_ROOT_FIND, UNCOMPRESSED)]) as assoc:
        for start in range(0, len(uids), 40):
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "IMAGE"
            identifier.SOPInstanceUID = uids[start : start + 40]
            for status, answer in assoc.send_c_find(identifier, STUDY_ROOT_FIND):
                assert "Status" in status
                if int(status.Status) in (0xFF00, 0xFF01) and answer is not None:
                    found.add(str(answer.SOPInstanceUID))
                elif int(status.Status) != 0:
                    pytest.fail(f"C-FIND failed with 0x{int(status.Status):04X}")
    return found


def test_every_sample_is_stored_or_refused_properly(node: RunningServer, shared_data: Path) -> None:
    """Each file gets Success or a proper failure (never an abort, never silence); the
    server stays up; every stored file is then found at IMAGE level by its SOP UID."""
    folder = shared_data / "dicom-samples"
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        pytest.skip("dicom-samples/manifest.csv is absent")
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    tally = Tally()
    samples = []
    for row in rows:
        path = folder / row["path"]
        if not path.is_file():
            tally.skipped["listed but absent"].append(row["path"])
            continue
        if row["dicom_read"] not in ("ok", "force"):
            tally.skipped["pydicom cannot read it (sent raw)"].append(row["path"])
        samples.append(_prepare(path))
    _send_all(node, samples, tally)
    assert_alive(node)
    _report(tally, len(rows))
    assert tally.no_answer == []
    assert tally.stored, "nothing was stored"
    stored_uids = sorted({s.sop_uid for s in tally.stored})
    missing = set(stored_uids) - _found(node, stored_uids)
    assert missing == set(), f"stored but not found: {sorted(missing)[:10]}"
    _check_blobs(node, tally)


def _check_blobs(node: RunningServer, tally: Tally) -> None:
    """Each stored sample's blob holds the data set bytes exactly as they were sent."""
    first_sent: dict[str, bytes] = {}
    for sample in tally.stored:
        first_sent.setdefault(sample.sop_uid, sample.body)
    kept: dict[str, bytes] = {}
    for path in (node.data_dir / "blobs").rglob("*"):
        if path.is_file():
            meta, body = _split(path.read_bytes())
            assert meta is not None, f"blob {path} has no File Meta"
            kept[_uid_text(meta.MediaStorageSOPInstanceUID)] = body
    differ = [uid for uid, body in first_sent.items() if kept.get(uid) != body]
    assert differ == [], f"{len(differ)} blob(s) differ from what was sent: {differ[:5]}"


def _report(tally: Tally, total: int) -> None:
    print(
        f"\nshared samples: {total} listed, {len(tally.stored)} stored, "
        f"{len(tally.warned)} stored with a warning, "
        f"{sum(map(len, tally.refused.values()))} refused, no answer {len(tally.no_answer)}"
    )
    for reason, names in sorted(tally.refused.items(), key=lambda kv: -len(kv[1])):
        short = ", ".join(name.split("dicom-samples/")[-1] for name in names)
        print(f"  refused {len(names):3d}  {reason}: {short}")
    for reason, names in tally.skipped.items():
        print(f"  note    {len(names):3d}  {reason}: {', '.join(n[-50:] for n in names[:5])}")
    for line in tally.no_answer:
        print(f"  NO ANSWER {line}")
