"""An Orthanc-compatible REST API over the archive (imports only pacs.core)."""

from orthanc_compat.app import build_orthanc_app, mount_at_root
from orthanc_compat.keys import SystemInfo

__all__ = ["SystemInfo", "build_orthanc_app", "mount_at_root"]
