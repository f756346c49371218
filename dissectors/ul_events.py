"""Events emitted by the DICOM upper-layer parser (PS3.8 §9.3), one direction at a time.

Names are the standard's PDU names CapWorded (A-ASSOCIATE-RQ -> ``AssociateRQ``).
Every event carries the frame numbers of its first and last byte so that a
report row can always be found in Wireshark.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PresentationContextRQ:
    """Presentation Context Item of an A-ASSOCIATE-RQ (PS3.8 Table 9-13)."""

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PresentationContextAC:
    """Presentation Context Item of an A-ASSOCIATE-AC (PS3.8 Table 9-18).

    ``result``: 0 acceptance, 1 user-rejection, 2 no-reason (provider rejection),
    3 abstract-syntax-not-supported, 4 transfer-syntaxes-not-supported.
    """

    context_id: int
    result: int
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoleSelection:
    """SCP/SCU Role Selection sub-item (PS3.7 §D.3.3.4)."""

    sop_class_uid: str
    scu_role: int
    scp_role: int


@dataclass(frozen=True, slots=True)
class UserInformation:
    """User Information item (PS3.8 §9.3.2.3, PS3.7 Annex D.3.3).

    The User Identity secret (password, Kerberos ticket, JWT) is never kept:
    only its type and sizes, which is all an audit needs.
    """

    max_pdu_length: int | None = None
    max_length_items: int = 0
    implementation_class_uid: str | None = None
    implementation_version_name: str | None = None
    max_ops_invoked: int | None = None
    max_ops_performed: int | None = None
    roles: tuple[RoleSelection, ...] = ()
    extended_negotiation: tuple[str, ...] = ()
    user_identity_type: int | None = None
    user_identity_response_requested: bool | None = None
    user_identity_server_response_length: int | None = None


@dataclass(frozen=True, slots=True)
class AssociateRQ:
    """A-ASSOCIATE-RQ PDU (PS3.8 §9.3.2)."""

    protocol_version: int
    called_ae_title: str
    calling_ae_title: str
    application_context: str | None
    contexts: tuple[PresentationContextRQ, ...]
    user_info: UserInformation
    item_types: tuple[int, ...]
    first_frame: int
    last_frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class AssociateAC:
    """A-ASSOCIATE-AC PDU (PS3.8 §9.3.3)."""

    protocol_version: int
    called_ae_title: str
    calling_ae_title: str
    application_context: str | None
    contexts: tuple[PresentationContextAC, ...]
    user_info: UserInformation
    item_types: tuple[int, ...]
    first_frame: int
    last_frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class AssociateRJ:
    """A-ASSOCIATE-RJ PDU (PS3.8 §9.3.4, Table 9-21)."""

    result: int
    source: int
    reason: int
    first_frame: int
    last_frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class ReleaseRQ:
    """A-RELEASE-RQ PDU (PS3.8 §9.3.6)."""

    first_frame: int
    last_frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class ReleaseRP:
    """A-RELEASE-RP PDU (PS3.8 §9.3.7)."""

    first_frame: int
    last_frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class Abort:
    """A-ABORT PDU (PS3.8 §9.3.8, Table 9-26): source 0 user, 2 provider."""

    source: int
    reason: int
    first_frame: int
    last_frame: int
    ts: float


@dataclass(slots=True)  # not frozen: built per segment, frozen costs 4x
class PDataTF:
    """Header of a P-DATA-TF PDU (PS3.8 §9.3.5); its PDVs follow as ``Pdv`` events."""

    length: int
    frame: int
    ts: float


@dataclass(slots=True)  # not frozen: built per segment, frozen costs 4x
class PDataEnd:
    """The last byte of a P-DATA-TF PDU arrived: its frames, from header to end."""

    length: int
    first_frame: int
    frame: int
    ts: float


@dataclass(slots=True)  # not frozen: built per segment, frozen costs 4x
class Pdv:
    """A piece of one Presentation Data Value (PS3.8 Table 9-23, Annex E).

    Large PDVs (C-STORE pixel data) are delivered in pieces as TCP delivers
    them, so nothing is buffered for data nobody reads; ``end`` is True on
    the piece that completes the PDV.  ``control`` is the Message Control
    Header: bit 0 = command (1) / data set (0), bit 1 = last fragment.
    ``first_frame`` is where the piece began (for a PDV's first piece, the
    frame holding its PDV header); ``frame`` is where it ended.  ``first``
    marks a PDV's first piece and ``length`` is the whole fragment's length
    (PDV item-length minus the 2 header bytes), known from the PDV header.
    ``skipped`` counts bytes of this PDV before ``data`` that the consumer
    let the parser absorb unseen (``PduParser.skip_count``).
    """

    context_id: int
    control: int
    data: bytes
    end: bool
    first_frame: int
    frame: int
    ts: float
    first: bool = True
    length: int = 0
    skipped: int = 0


@dataclass(slots=True)  # not frozen: built per segment, frozen costs 4x
class Lost:
    """Bytes of this direction that were never captured (a TCP gap).

    ``inside_pdv`` is True when the parser could skip the hole without
    losing its place (the hole lies inside the data of one PDV); the message
    being assembled is then incomplete but later PDUs decode normally.
    """

    missing: int
    inside_pdv: bool
    frame: int
    ts: float


@dataclass(frozen=True, slots=True)
class DecodeFinding:
    """Bytes that are not valid DICOM upper-layer traffic.

    ``code`` is a stable rule ID (``UL-PDU-TYPE``, ``UL-PDV-FRAMING``...);
    the parser resynchronises on the next plausible PDU header after it.
    """

    code: str
    detail: str
    frame: int
    ts: float
    extra: dict = field(default_factory=dict, compare=False)


PduEvent = AssociateRQ | AssociateAC | AssociateRJ | ReleaseRQ | ReleaseRP | Abort
UlEvent = PduEvent | PDataTF | PDataEnd | Pdv | Lost | DecodeFinding
