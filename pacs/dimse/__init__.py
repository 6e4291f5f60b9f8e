"""The DIMSE door: a pynetdicom adapter exposing the Archive to DICOM peers."""
