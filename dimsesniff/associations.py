"""What is known about one association: peers, AE titles, presentation contexts, limits.

Filled from the A-ASSOCIATE-RQ/AC/RJ exchange (PS3.8 §7.1, §9.3.2-9.3.4).  When
the capture starts mid-association nothing of that is known: contexts are
then *assumed* (Implicit VR Little Endian, the default transfer syntax of
PS3.5 §10.1) and the output says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dissectors.stream_events import Endpoint
from dissectors.ul_events import AssociateAC, AssociateRJ, AssociateRQ

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"

# A-ASSOCIATE-AC presentation context results, PS3.8 Table 9-18.
CONTEXT_RESULTS = {
    0: "acceptance",
    1: "user-rejection",
    2: "no-reason",
    3: "abstract-syntax-not-supported",
    4: "transfer-syntaxes-not-supported",
}


@dataclass(slots=True)
class PresentationContext:
    context_id: int
    abstract_syntax: str | None
    proposed: tuple[str, ...] = ()
    result: int | None = None  # None until the A-ASSOCIATE-AC answers it
    transfer_syntax: str | None = None  # the one accepted

    @property
    def accepted(self) -> bool:
        return self.result == 0


@dataclass(slots=True)
class Association:
    """One DICOM association (one TCP connection carrying DICOM).

    ``requestor`` sent the A-ASSOCIATE-RQ (the client); ``acceptor`` is the
    server.  ``requestor_is_initiator`` maps that onto TCP directions.
    """

    id: int
    conn: int
    requestor: Endpoint
    acceptor: Endpoint
    requestor_is_initiator: bool = True
    start_frame: int = 0
    start_ts: float = 0.0
    end_frame: int | None = None
    end_ts: float | None = None
    end_reason: str = ""
    calling_ae: str | None = None
    called_ae: str | None = None
    rq: AssociateRQ | None = None
    ac: AssociateAC | None = None
    rj: AssociateRJ | None = None
    contexts: dict[int, PresentationContext] = field(default_factory=dict)
    assumed: bool = False  # capture began mid-association: contexts unknown
    state: str = "requested"  # requested, established, rejected, releasing, released, aborted
    release_requested_by: str | None = None
    messages_from_requestor: int = 0
    messages_from_acceptor: int = 0
    findings: int = 0

    # -- filling in from PDUs --------------------------------------------------------

    def on_rq(self, rq: AssociateRQ) -> None:
        self.rq = rq
        self.calling_ae = rq.calling_ae_title
        self.called_ae = rq.called_ae_title
        for ctx in rq.contexts:
            self.contexts[ctx.context_id] = PresentationContext(
                ctx.context_id, ctx.abstract_syntax, ctx.transfer_syntaxes
            )

    def on_ac(self, ac: AssociateAC) -> None:
        self.ac = ac
        self.state = "established"
        for item in ac.contexts:
            ctx = self.contexts.get(item.context_id)
            if ctx is None:
                ctx = self.contexts[item.context_id] = PresentationContext(item.context_id, None)
            ctx.result = item.result
            if item.result == 0 and item.transfer_syntaxes:
                ctx.transfer_syntax = item.transfer_syntaxes[0]

    def on_rj(self, rj: AssociateRJ) -> None:
        self.rj = rj
        self.state = "rejected"

    # -- questions asked while decoding -------------------------------------------------

    def context(self, context_id: int) -> PresentationContext:
        """The presentation context of a PDV; invented (assumed) when the capture missed it."""
        ctx = self.contexts.get(context_id)
        if ctx is None:
            ctx = self.contexts[context_id] = PresentationContext(context_id, None)
        return ctx

    def transfer_syntax(self, context_id: int) -> tuple[str, bool]:
        """Transfer syntax of a context's data sets and whether it was assumed."""
        ctx = self.contexts.get(context_id)
        if ctx is not None and ctx.transfer_syntax:
            return ctx.transfer_syntax, False
        return IMPLICIT_VR_LITTLE_ENDIAN, True

    @property
    def max_pdu_requestor(self) -> int | None:
        """Maximum length the requestor can receive (PS3.8 Annex D.1)."""
        return self.rq.user_info.max_pdu_length if self.rq else None

    @property
    def max_pdu_acceptor(self) -> int | None:
        return self.ac.user_info.max_pdu_length if self.ac else None
