"""dimsesniff: DICOM network traffic analyzer (application: sources, pipeline, checks, reports)."""

__version__ = "0.1.0"
