"""The DICOMweb door (PS3.18): QIDO-RS, WADO-RS, STOW-RS and WADO-URI."""

from dicomweb.app import build_dicomweb_app
from dicomweb.uri import wado_uri_handler

__all__ = ["build_dicomweb_app", "wado_uri_handler"]
