"""What ``/anonymize`` and ``/modify`` do to one data set, as Orthanc 1.10.1 does it.

A request body is parsed once into a :class:`Modification`; :meth:`Modification.apply`
then changes each instance in place. New identifiers come from one map per request, keyed
by (level, original value), so the same original UID always gets the same new UID within a
request, wherever it appears (top level or inside sequences).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from orthanc_compat.anonymize_tables import DEFAULT_VERSION, PROFILES
from orthanc_compat.dicom_edit import (
    NOT_STRING_VRS,
    TagPath,
    empty_value,
    is_ascii,
    items_at,
    parse_path,
    set_value,
    switch_to_utf8,
    tag_name,
)
from orthanc_compat.errors import (
    BAD_FILE_FORMAT,
    BAD_REQUEST,
    PARAMETER_OUT_OF_RANGE,
    OrthancError,
)
from pacs.core.model import Level

UID_ROOT = "1.2.826.0.1.3680043.10.1137."  # the project's UID root (as /tools/generate-uid)
PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
SOP_UID = 0x00080018
IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
REFERENCED_SOP_INSTANCE_UID = 0x00081155
RT_STUDY_PATH = (0x30060010, 0x30060012)  # ReferencedFrameOfReference > RTReferencedStudy
MAIN_IDENTIFIERS = {PATIENT_ID: 0, STUDY_UID: 1, SERIES_UID: 2, SOP_UID: 3}
_MAIN_UIDS = ((STUDY_UID, Level.STUDY), (SERIES_UID, Level.SERIES), (SOP_UID, Level.IMAGE))
ORTHANC_METHOD = "PACS - PS 3.15-{} Table E.1-1{}"  # LO: at most 64 characters


def _boolean(body: dict[str, Any], member: str, default: bool) -> bool:
    value = body.get(member, default)
    if not isinstance(value, bool):
        raise OrthancError(400, BAD_FILE_FORMAT, f'Member "{member}" should be a Boolean value')
    return value


def _tag_list(body: dict[str, Any], member: str) -> list[TagPath]:
    value = body.get(member, [])
    if not isinstance(value, list):
        raise OrthancError(400, BAD_REQUEST, f'"{member}" must be a list of tags')
    return [parse_path(item) for item in value]


def _replacements(body: dict[str, Any]) -> list[tuple[TagPath, Any]]:
    value = body.get("Replace", {})
    if not isinstance(value, dict):
        raise OrthancError(400, BAD_REQUEST, '"Replace" must be an object')
    return [(parse_path(name), replacement) for name, replacement in value.items()]


def _need_force(paths: list[TagPath], operation: str, force: bool) -> None:
    for path in paths:
        tag = path.final
        if not path.prefix and tag in MAIN_IDENTIFIERS and not force:
            raise OrthancError(
                400,
                BAD_REQUEST,
                f'Marking tag "{tag_name(tag)}" as to be {operation} requires the "Force" option '
                "to be set to true",
            )


def check_unsupported_options(body: dict[str, Any]) -> None:
    """Options not served here (400): ``Transcode``; ``Asynchronous``/``Synchronous`` must
    be booleans."""
    _boolean(body, "Asynchronous", False)
    _boolean(body, "Synchronous", True)
    if "Transcode" in body:
        raise OrthancError(400, BAD_REQUEST, '"Transcode" is not supported')


@dataclass
class Modification:
    """A parsed ``/modify`` or ``/anonymize`` request."""

    level: Level
    anonymization: bool = False
    remove: set[int] = field(default_factory=set)
    clear: set[int] = field(default_factory=set)
    uids: set[int] = field(default_factory=set)
    replace: dict[int, Any] = field(default_factory=dict)
    keep: set[int] = field(default_factory=set)
    remove_private: bool = False
    keep_source: bool = True
    keep_paths: list[TagPath] = field(default_factory=list)
    remove_paths: list[TagPath] = field(default_factory=list)
    replace_paths: list[tuple[TagPath, Any]] = field(default_factory=list)
    uid_map: dict[tuple[Level, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _keep(self, tag: int) -> None:
        self.keep.add(tag)
        self.remove.discard(tag)
        self.clear.discard(tag)
        self.uids.discard(tag)
        self.replace.pop(tag, None)

    def _remove(self, tag: int) -> None:
        self.remove.add(tag)
        self.clear.discard(tag)
        self.uids.discard(tag)
        self.replace.pop(tag, None)
        self.keep.discard(tag)

    def _replace(self, tag: int, value: Any) -> None:
        self.remove.discard(tag)
        self.clear.discard(tag)
        self.uids.discard(tag)
        self.keep.discard(tag)
        self.replace[tag] = value

    def _parse_common(self, body: dict[str, Any], force: bool) -> None:
        removals, replacements, kept = (
            _tag_list(body, "Remove"),
            _replacements(body),
            _tag_list(body, "Keep"),
        )
        _need_force(removals, "removed", force)
        _need_force([path for path, _ in replacements], "replaced", force)
        _need_force(kept, "kept", force)
        for path in removals:
            if path.prefix:
                self.remove_paths.append(path)
            else:
                self._remove(path.final)
        for path, value in replacements:
            if path.prefix:
                self.replace_paths.append((path, value))
            else:
                self._replace(path.final, value)
        for path in kept:  # below a kept path, the anonymization changes nothing
            self.keep_paths.append(path)
            if not path.prefix:
                self._keep(path.final)
        self.keep_source = _boolean(body, "KeepSource", True)
        if any(tag in self.remove for tag in MAIN_IDENTIFIERS):
            raise OrthancError(
                400, BAD_REQUEST, "It is forbidden to remove one of the main Dicom identifiers"
            )

    def is_modified(self, tag: int) -> bool:
        """Whether the request names the tag (cleared, removed or replaced)."""
        return tag in self.clear or tag in self.remove or tag in self.replace

    def new_identifier(self, original: str, level: Level) -> str:
        """The new identifier of ``original`` at ``level``: the same one for the whole request."""
        key = (level, original.strip())
        with self._lock:  # instances of one request are rewritten by several threads
            if key not in self.uid_map:
                fresh = uuid.uuid4() if level == Level.PATIENT else generate_uid(prefix=UID_ROOT)
                self.uid_map[key] = str(fresh)
            return self.uid_map[key]

    def apply(self, ds: Dataset) -> None:
        """Modify one data set in place (Orthanc's order: private tags, clearings, removals,
        replacements, new main UIDs, then UIDs referenced anywhere in the data set)."""
        if self.anonymization:  # references to a replaced UID follow the replacement
            for tag, level in _MAIN_UIDS:
                if tag in self.replace and tag in ds:
                    with self._lock:
                        key = (level, str(ds[tag].value).strip())
                        self.uid_map.setdefault(key, str(self.replace[tag]))
        if self.remove_private:
            for elem in list(ds):
                if elem.tag.is_private and int(elem.tag) not in self.keep:
                    del ds[elem.tag]
        for tag in self.clear:
            if tag in ds:
                empty_value(ds[tag])
        for tag in self.remove:
            if tag in ds:
                del ds[tag]
        if any(not is_ascii(value) for value in self.replace.values()):
            switch_to_utf8(ds)
        for tag, value in self.replace.items():
            set_value(ds, tag, value)
        self._new_main_uids(ds)
        if self.anonymization:
            self._map_references(ds, ())
        for path in self.remove_paths:
            for item in items_at(ds, path.prefix):
                if path.final in item:
                    del item[path.final]
        for path, value in self.replace_paths:
            for item in items_at(ds, path.prefix):
                set_value(item, path.final, value)
        if "SOPInstanceUID" in ds and getattr(ds, "file_meta", None) is not None:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

    def _new_main_uids(self, ds: Dataset) -> None:
        for tag, level in _MAIN_UIDS:
            if self.level <= level and tag not in self.replace and tag not in self.keep:
                original = str(ds[tag].value) if tag in ds else ""
                ds[tag] = DataElement(tag, "UI", self.new_identifier(original, level))

    def _map_references(self, ds: Dataset, parents: tuple[tuple[int, int], ...]) -> None:
        """The relationships visitor: map UIDs everywhere; inside sequences also drop private,
        removed and cleared attributes."""
        for elem in list(ds):
            tag = int(elem.tag)
            if parents:
                if any(path.matches(parents, tag) for path in self.keep_paths):
                    continue
                if (self.remove_private and elem.tag.is_private and tag not in self.keep) or (
                    tag in self.remove
                ):
                    del ds[elem.tag]
                    continue
                if tag in self.clear:  # strings (DS, IS too) emptied, other values removed
                    if elem.VR in NOT_STRING_VRS:
                        del ds[elem.tag]
                    else:
                        elem.value = ""
                    continue
            level = self._uid_level(tag, parents)
            if level is not None and elem.VR != "SQ" and elem.value not in (None, ""):
                values = elem.value if elem.VM > 1 else [elem.value]
                mapped = [self.new_identifier(str(v), level) for v in values]
                elem.value = mapped if elem.VM > 1 else mapped[0]
            if elem.VR == "SQ" and elem.value:
                for index, item in enumerate(elem.value):
                    self._map_references(item, (*parents, (tag, index)))

    def _uid_level(self, tag: int, parents: tuple[tuple[int, int], ...]) -> Level | None:
        """The level a UID is mapped at, or None when it is left as it is."""
        if not parents:
            if tag in self.uids and not self.is_modified(tag):
                return Level.PATIENT if tag in (PATIENT_ID, PATIENT_NAME) else Level.IMAGE
            return None
        own = {STUDY_UID: Level.STUDY, SERIES_UID: Level.SERIES, SOP_UID: Level.IMAGE}
        if tag in own:
            return own[tag]
        if tag not in self.uids:
            return None
        if tag in (PATIENT_ID, PATIENT_NAME):
            return Level.PATIENT
        if tag == REFERENCED_SOP_INSTANCE_UID and tuple(t for t, _ in parents) == RT_STUDY_PATH:
            return Level.STUDY  # RT structure sets reference a study by this attribute
        return Level.IMAGE


def parse_anonymize(body: Any, patient_name: Callable[[], str]) -> Modification:
    """An ``/anonymize`` body; ``patient_name()`` gives the new PatientName unless the body
    keeps, removes or replaces it. Anonymization always starts at the patient: a new
    patient, study, series and instances, whatever the level of the resource."""
    if not isinstance(body, dict):
        raise OrthancError(400, BAD_FILE_FORMAT, "The body must contain a JSON object")
    force = _boolean(body, "Force", False)
    version = body.get("DicomVersion", DEFAULT_VERSION)
    if not isinstance(version, str):
        raise OrthancError(400, BAD_FILE_FORMAT, '"DicomVersion" must be a string')
    if version not in PROFILES:
        raise OrthancError(
            400,
            PARAMETER_OUT_OF_RANGE,
            f"Unknown specific version of the DICOM standard: {version}",
        )
    profile = PROFILES[version]
    modification = Modification(
        level=Level.PATIENT,
        anonymization=True,
        remove=set(profile.remove),
        clear=set(profile.clear),
        uids=set(profile.uid) | {PATIENT_ID, PATIENT_NAME},
        remove_private=not _boolean(body, "KeepPrivateTags", False),
    )
    suffix = "" if version == "2008" else " Basic Profile"
    modification.replace[DEIDENTIFICATION_METHOD] = ORTHANC_METHOD.format(version, suffix)
    modification.replace[IDENTITY_REMOVED] = "YES"
    modification._parse_common(body, force)
    if (
        body.get("Keep")
        or body.get("Remove")
        or body.get("Replace")
        or not (modification.remove_private)
    ):  # as Orthanc: a customised profile no longer claims to be the standard one
        modification.replace.pop(DEIDENTIFICATION_METHOD, None)
    if PATIENT_NAME in modification.uids:
        modification._replace(PATIENT_NAME, patient_name())
    return modification


def parse_modify(body: Any, level: Level) -> Modification:
    """A ``/modify`` body for a resource of ``level`` (Orthanc's rules on identifiers)."""
    if not isinstance(body, dict):
        raise OrthancError(400, BAD_FILE_FORMAT, "The body must contain a JSON object")
    force = _boolean(body, "Force", False)
    modification = Modification(
        level=level, remove_private=_boolean(body, "RemovePrivateTags", False)
    )
    modification._parse_common(body, force)
    if level == Level.IMAGE:  # a single instance: the level follows what is replaced
        for tag, detected in (
            (PATIENT_ID, Level.PATIENT),
            (STUDY_UID, Level.STUDY),
            (SERIES_UID, Level.SERIES),
        ):
            if tag in modification.replace:
                modification.level = detected
                break
        return modification
    replaced = modification.replace
    words = {Level.PATIENT: "patient", Level.STUDY: "study", Level.SERIES: "series"}
    if level == Level.PATIENT and PATIENT_ID not in replaced:
        raise OrthancError(
            400, BAD_REQUEST, "When modifying a patient, her PatientID is required to be modified"
        )
    for tag, limit in ((PATIENT_ID, Level.STUDY), (STUDY_UID, Level.SERIES)):
        if level >= limit and tag in replaced:
            raise OrthancError(
                400,
                BAD_REQUEST,
                f"When modifying a {words[level]}, the parent {tag_name(tag)} cannot be "
                "manually modified",
            )
    return modification
