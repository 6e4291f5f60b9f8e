"""The domain core: archive, ingest, query model and index. No network library lives here."""
