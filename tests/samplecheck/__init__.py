"""Helpers for checking dimsesniff against real captures: peer logs, tshark, TCP rewriting."""
