"""Live DICOM peers (DCMTK and pynetdicom) for generating sample captures and their ground truth.

Public API (see runner.py):

    generate(name, out_dir) -> (pcap_path, peerlog_path)
    scenario_names() -> list of scenario names
    load_peerlog(path) -> dict (the parsed <name>.peerlog.json)
    check_prerequisites()   raises PeersUnavailable when root/ip/tcpdump/DCMTK are missing
"""

from .proc import PeersUnavailable, check_prerequisites
from .runner import generate, load_peerlog, scenario_names

__all__ = ["generate", "load_peerlog", "scenario_names", "check_prerequisites", "PeersUnavailable"]
