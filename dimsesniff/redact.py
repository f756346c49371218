"""Patient data policy for every value that leaves the tool.

Identifiers carry patient names, IDs and birth dates.  By default they are
replaced by a keyed hash token (HMAC-SHA-256, truncated): equal values give
equal tokens within a run (and across runs with the same ``--phi-key``), so
analysts can still join and count without seeing the values.
``--include-phi`` writes them as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Attributes that identify a patient or a visit, beyond group 0010 and PN values.
PHI_KEYWORDS = frozenset(
    {
        "AccessionNumber",
        "StudyID",
        "InstitutionName",
        "InstitutionAddress",
        "ReferringPhysicianTelephoneNumbers",
        "AdmissionID",
        "IssuerOfAdmissionID",
        "PerformedProcedureStepID",
        "RequestedProcedureID",
        "ScheduledProcedureStepID",
        "MedicalRecordLocator",
        "OtherPatientIDs",
        "PatientTelephoneNumbers",
    }
)


def is_phi(tag: int, vr: str, keyword: str) -> bool:
    """Patient module (group 0010), every person name (PN), and the list above."""
    return tag >> 16 == 0x0010 or vr == "PN" or keyword in PHI_KEYWORDS


class Redactor:
    """Replaces patient-identifying values by tokens unless told to keep them."""

    def __init__(self, include_phi: bool = False, key: str | None = None) -> None:
        self.include_phi = include_phi
        self._key = key.encode() if key else secrets.token_bytes(32)

    def token(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8", "replace"), hashlib.sha256)
        return "phi:" + digest.hexdigest()[:12]

    def value(self, tag: int, vr: str, keyword: str, value: str) -> str:
        if self.include_phi or not value or not is_phi(tag, vr, keyword):
            return value
        return self.token(value)
