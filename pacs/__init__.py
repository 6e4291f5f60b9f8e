"""PACS/RIS imaging server: the core, its doors, and the process that runs them."""

__version__ = "0.1.0"
