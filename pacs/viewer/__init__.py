"""The bundled OHIF web viewer: installed from npm, served under ``/viewer/``."""

from pacs.viewer.install import VERSION, ViewerInstallError, install_viewer, installed_version
from pacs.viewer.serve import add_viewer_routes

__all__ = [
    "VERSION",
    "ViewerInstallError",
    "add_viewer_routes",
    "install_viewer",
    "installed_version",
]
