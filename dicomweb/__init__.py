"""The DICOMweb door (PS3.18): QIDO-RS so far; WADO-RS and STOW-RS follow (issue #3)."""

from dicomweb.app import build_dicomweb_app

__all__ = ["build_dicomweb_app"]
