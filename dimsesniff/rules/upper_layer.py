"""Upper-layer rules (rules.md §8): PDUs, items, PDVs and their order (PS3.8 §9, Annexes D, E).

These run on association events (``associate-rq``, ``associate-ac``, ``pdata``,
``pdv``, ``release-*``, ``abort``) with the upper-layer event as ``pdu``.
Rules that need the negotiation stay silent on associations caught
mid-capture, whose A-ASSOCIATE exchange was not seen.  Byte-level framing
problems (bad PDU type, PDV items that do not tile a PDU...) are decode
rules raised by the parser itself (``decode.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dissectors.ul_events import (
    Abort,
    AssociateAC,
    AssociateRJ,
    AssociateRQ,
    PDataEnd,
    PDataTF,
    Pdv,
)

from .base import Problem, Severity, association_rule

if TYPE_CHECKING:
    from ..checks import AssociationEvent

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741

# PS3.8 Table 9-21: A-ASSOCIATE-RJ Source -> allowed Reason values (others reserved).
RJ_REASONS = {1: frozenset({1, 2, 3, 7}), 2: frozenset({1, 2}), 3: frozenset({1, 2})}
# PS3.8 Table 9-26: A-ABORT provider reasons (3 is reserved).
ABORT_PROVIDER_REASONS = frozenset({0, 1, 2, 4, 5, 6})
AC_RESULTS = frozenset({0, 1, 2, 3, 4})


def _pdu_frames(event: AssociationEvent) -> tuple[int, ...]:
    """First and last frame of the P-DATA-TF an event is about (header to last byte)."""
    pdu = event.pdu
    return (pdu.first_frame, pdu.frame) if isinstance(pdu, PDataEnd) else ()


def _assoc_pdu(event: AssociationEvent) -> AssociateRQ | AssociateAC | None:
    pdu = event.pdu
    if isinstance(pdu, tuple):  # associate-ac carries (state before, AC)
        pdu = pdu[1]
    return pdu if isinstance(pdu, (AssociateRQ, AssociateAC)) else None


@association_rule(
    "UL-PDU-STATE",
    E,
    "PS3.8 §9.2, Table 9-10",
    events=["associate-ac", "pdata-end"],
    origin="[P8]",
)
def pdu_state(event: AssociationEvent) -> tuple[Problem, ...]:
    """PDU not allowed in the association's current state.

    The upper-layer state machine (PS3.8 Table 9-10) treats an unexpected PDU
    as a protocol error leading to A-P-ABORT: a second A-ASSOCIATE-AC, or
    P-DATA-TF before the association is accepted or after it was aborted.
    """
    assoc = event.assoc
    if event.kind == "associate-ac":
        state_before, _ = event.pdu  # type: ignore[misc]
        # An association decoded on assumptions (its A-ASSOCIATE-RQ was not captured)
        # was only guessed established: the AC that follows is the real one.
        if state_before != "requested" and not assoc.assumed:
            return (
                Problem(
                    f"A-ASSOCIATE-AC while the association was {state_before}",
                    observed="A-ASSOCIATE-AC",
                    expected="after an A-ASSOCIATE-RQ only",
                ),
            )
    elif not assoc.assumed and assoc.state in ("requested", "rejected", "aborted"):
        return (
            Problem(
                f"P-DATA-TF while the association was {assoc.state}",
                observed="P-DATA-TF",
                expected="only on an established association",
                frames=_pdu_frames(event),
            ),
        )
    return ()


@association_rule(
    "UL-PROTO-VERSION",
    E,
    "PS3.8 Tables 9-11, 9-17",
    events=["associate-rq", "associate-ac"],
    origin="[P8]",
)
def protocol_version(event: AssociationEvent) -> Iterator[Problem]:
    """A-ASSOCIATE protocol version without bit 0 set.

    Bit 0 of the Protocol-version field identifies version 1 of the DICOM
    upper-layer protocol; a peer that clears it speaks something else.
    """
    pdu = _assoc_pdu(event)
    if pdu is not None and not pdu.protocol_version & 1:
        yield Problem(
            f"protocol version {pdu.protocol_version:04X}H",
            observed=f"{pdu.protocol_version:04X}H",
            expected="bit 0 set (0001H)",
        )


@association_rule("UL-AE-BLANK", E, "PS3.8 Table 9-11", events=["associate-rq"], origin="[P8]")
def ae_blank(event: AssociationEvent) -> Iterator[Problem]:
    """Called or Calling AE title made of spaces only.

    "The value made of 16 spaces (20H) meaning 'no Application Name
    specified' shall not be used": such a peer cannot be configured or audited.
    """
    pdu = _assoc_pdu(event)
    if pdu is None:
        return
    for name, value in (("Called", pdu.called_ae_title), ("Calling", pdu.calling_ae_title)):
        if not value:
            yield Problem(
                f"{name} AE title is blank", observed="16 spaces", expected="a non-blank AE title"
            )


@association_rule(
    "UL-ITEM-ORDER", W, "PS3.8 §9.3.1", events=["associate-rq", "associate-ac"], origin="[P8]"
)
def item_order(event: AssociationEvent) -> Iterator[Problem]:
    """A-ASSOCIATE variable items not in increasing item-type order.

    "Items shall appear in an increasing order of their item types":
    Application Context (10H), Presentation Contexts (20H/21H), User
    Information (50H).  Strict parsers reject other orders.
    """
    pdu = _assoc_pdu(event)
    if pdu is not None and list(pdu.item_types) != sorted(pdu.item_types):
        order = " ".join(f"{t:02X}H" for t in pdu.item_types)
        yield Problem(f"items in order {order}", observed=order, expected="ascending item types")


@association_rule(
    "UL-PCTX-ID",
    E,
    "PS3.8 Tables 9-13, 9-18, 9-23",
    events=["associate-rq", "associate-ac", "pdv"],
    origin="[P8]",
)
def context_id_odd(event: AssociationEvent) -> tuple[Problem, ...]:
    """Presentation-context ID that is even or zero.

    Presentation-context IDs "shall be odd integers between 1 and 255"; an
    even ID cannot have been negotiated.
    """
    pdu = event.pdu
    if isinstance(pdu, Pdv):
        if pdu.context_id % 2:
            return ()
        ids = [pdu.context_id]
    else:
        assoc_pdu = _assoc_pdu(event)
        ids = [c.context_id for c in assoc_pdu.contexts] if assoc_pdu is not None else []
    return tuple(
        Problem(f"presentation-context ID {ctx_id}", observed=str(ctx_id), expected="odd, 1-255")
        for ctx_id in ids
        if ctx_id % 2 == 0
    )


@association_rule("UL-PCTX-ID-DUP", E, "PS3.8 §7.1.1.13", events=["associate-rq"], origin="[P8]")
def context_id_duplicate(event: AssociationEvent) -> Iterator[Problem]:
    """Two proposed presentation contexts with the same ID.

    The requestor shall "assign an arbitrary, but unused identifier for each
    proposed presentation context"; with duplicates the acceptor's answer is
    ambiguous.
    """
    pdu = _assoc_pdu(event)
    if pdu is None:
        return
    ids = [c.context_id for c in pdu.contexts]
    for ctx_id in sorted({i for i in ids if ids.count(i) > 1}):
        yield Problem(
            f"presentation-context ID {ctx_id} proposed {ids.count(ctx_id)} times",
            observed=str(ctx_id),
            expected="unique IDs",
        )


def _ac(event: AssociationEvent) -> AssociateAC | None:
    pdu = _assoc_pdu(event)
    return pdu if isinstance(pdu, AssociateAC) and event.assoc.rq is not None else None


@association_rule("UL-AC-RESULT", E, "PS3.8 Table 9-18", events=["associate-ac"], origin="[P8]")
def ac_result(event: AssociationEvent) -> Iterator[Problem]:
    """A-ASSOCIATE-AC presentation-context result outside 0-4.

    Table 9-18 defines acceptance (0) and four reasons for rejection (1-4);
    any other value leaves the context's fate unknown.
    """
    pdu = _assoc_pdu(event)
    if pdu is None:
        return
    for ctx in pdu.contexts:
        if ctx.result not in AC_RESULTS:  # type: ignore[union-attr]
            yield Problem(
                f"context {ctx.context_id}: result {ctx.result}",  # type: ignore[union-attr]
                observed=str(ctx.result),
                expected="0-4",
            )  # type: ignore[union-attr]


@association_rule("UL-AC-CTX-UNKNOWN", E, "PS3.8 §7.1.1.14", events=["associate-ac"], origin="[P8]")
def ac_context_unknown(event: AssociationEvent) -> Iterator[Problem]:
    """A-ASSOCIATE-AC answers a presentation context that was not proposed, or one twice.

    The acceptor's list has "a one to one correspondence" with the proposed
    contexts.
    """
    ac = _ac(event)
    if ac is None:
        return
    proposed = {c.context_id for c in event.assoc.rq.contexts}  # type: ignore[union-attr]
    answered = [c.context_id for c in ac.contexts]
    for ctx_id in answered:
        if ctx_id not in proposed:
            yield Problem(
                f"context {ctx_id} was not proposed",
                observed=str(ctx_id),
                expected=" ".join(map(str, sorted(proposed))),
            )
    for ctx_id in sorted({i for i in answered if answered.count(i) > 1}):
        yield Problem(
            f"context {ctx_id} answered {answered.count(ctx_id)} times",
            observed=str(ctx_id),
            expected="answered once",
        )


@association_rule("UL-AC-CTX-MISSING", W, "PS3.8 §7.1.1.14", events=["associate-ac"], origin="[P8]")
def ac_context_missing(event: AssociationEvent) -> Iterator[Problem]:
    """A-ASSOCIATE-AC leaves a proposed presentation context unanswered.

    Every proposed context should come back accepted or rejected; an
    unanswered one is silently unusable for the requestor.
    """
    ac = _ac(event)
    if ac is None:
        return
    answered = {c.context_id for c in ac.contexts}
    for ctx in event.assoc.rq.contexts:  # type: ignore[union-attr]
        if ctx.context_id not in answered:
            yield Problem(
                f"proposed context {ctx.context_id} ({ctx.abstract_syntax}) not answered",
                observed="absent",
                expected="a 21H item",
            )


@association_rule(
    "UL-AC-TS", E, "PS3.8 Table 9-18, §7.1.1.14", events=["associate-ac"], origin="[P8]"
)
def ac_transfer_syntax(event: AssociationEvent) -> Iterator[Problem]:
    """Accepted context without exactly one proposed transfer syntax.

    An accepted presentation context "shall contain one Transfer Syntax
    Sub-Item", one of those proposed: data sets are decoded with it.
    """
    ac = _ac(event)
    if ac is None:
        return
    proposed = {c.context_id: c.transfer_syntaxes for c in event.assoc.rq.contexts}  # type: ignore[union-attr]
    for ctx in ac.contexts:
        if ctx.result != 0:
            continue
        if len(ctx.transfer_syntaxes) != 1:
            yield Problem(
                f"context {ctx.context_id} accepted with "
                f"{len(ctx.transfer_syntaxes)} transfer syntaxes",
                observed=str(len(ctx.transfer_syntaxes)),
                expected="1",
            )
        elif (
            ctx.context_id in proposed and ctx.transfer_syntaxes[0] not in proposed[ctx.context_id]
        ):
            yield Problem(
                f"context {ctx.context_id} accepted with {ctx.transfer_syntaxes[0]}, "
                "which was not proposed",
                observed=ctx.transfer_syntaxes[0],
                expected=" ".join(proposed[ctx.context_id]),
            )


@association_rule("UL-RJ-VALUES", E, "PS3.8 Table 9-21", events=["associate-rj"], origin="[P8]")
def rj_values(event: AssociationEvent) -> Iterator[Problem]:
    """A-ASSOCIATE-RJ result, source or reason outside Table 9-21.

    The requestor reports the rejection from these three bytes; reserved
    reason values (warning) cannot be explained to a user.
    """
    rj = event.pdu
    if not isinstance(rj, AssociateRJ):
        return
    if rj.result not in (1, 2):
        yield Problem(f"result {rj.result}", observed=str(rj.result), expected="1 or 2")
    if rj.source not in RJ_REASONS:
        yield Problem(f"source {rj.source}", observed=str(rj.source), expected="1, 2 or 3")
    elif rj.reason not in RJ_REASONS[rj.source]:
        yield Problem(
            f"reason {rj.reason} is reserved for source {rj.source}",
            observed=str(rj.reason),
            expected=" ".join(map(str, sorted(RJ_REASONS[rj.source]))),
            severity=W,
        )


@association_rule("UL-ABORT-VALUES", E, "PS3.8 Table 9-26", events=["abort"], origin="[P8]")
def abort_values(event: AssociationEvent) -> Iterator[Problem]:
    """A-ABORT source or reason outside Table 9-26.

    Source 0 is the service user, 2 the service provider (1 is reserved);
    provider reasons 0-2 and 4-6 are defined (3 is reserved).
    """
    ab = event.pdu
    if not isinstance(ab, Abort):
        return
    if ab.source == 1:
        yield Problem("source 1 is reserved", observed="1", expected="0 or 2", severity=W)
    elif ab.source not in (0, 2):
        yield Problem(f"source {ab.source}", observed=str(ab.source), expected="0 or 2")
    elif ab.source == 2 and ab.reason not in ABORT_PROVIDER_REASONS:
        yield Problem(
            f"provider reason {ab.reason}",
            observed=str(ab.reason),
            expected="0, 1, 2, 4, 5 or 6",
            severity=W if ab.reason == 3 else None,
        )


@association_rule("UL-ABORT-USER-REASON", I, "PS3.8 Table 9-26", events=["abort"], origin="[P8]")
def abort_user_reason(event: AssociationEvent) -> Iterator[Problem]:
    """User-initiated A-ABORT with a non-zero reason.

    With source 0 the reason "shall be sent with a value 00H but not tested":
    harmless, but the value carries no meaning.
    """
    ab = event.pdu
    if isinstance(ab, Abort) and ab.source == 0 and ab.reason != 0:
        yield Problem(f"user abort with reason {ab.reason}", observed=str(ab.reason), expected="0")


@association_rule(
    "UL-MAXLEN-ITEM",
    E,
    "PS3.8 §D.1.1, §D.1.2, Tables D.1-1, D.1-2",
    events=["associate-rq", "associate-ac"],
    origin="[P8]",
)
def max_length_item(event: AssociationEvent) -> Iterator[Problem]:
    """Maximum Length sub-item repeated or not 4 bytes long.

    "Only one Maximum Length Sub-Item shall be present"; its value is what
    the peer can receive, so a bad one leaves the limit unknown.
    """
    pdu = _assoc_pdu(event)
    if pdu is None:
        return
    ui = pdu.user_info
    if ui.max_length_items > 1:
        yield Problem(
            f"{ui.max_length_items} Maximum Length sub-items",
            observed=str(ui.max_length_items),
            expected="1",
        )
    if ui.max_length_items and ui.max_pdu_length is None:
        yield Problem("Maximum Length sub-item whose length is not 4", expected="length 4")


@association_rule("UL-PDV-MAXLEN", E, "PS3.8 §D.1.1, §D.1.2", events=["pdata-end"], origin="[P8]")
def pdata_max_length(event: AssociationEvent) -> tuple[Problem, ...]:
    """P-DATA-TF longer than the maximum length its receiver announced.

    "This maximum length value shall never be exceeded by the PDU length
    values used in the PDU-length field of the P-DATA-TF PDUs received by
    the association-requestor/acceptor. Otherwise, it shall be a protocol
    error."  Zero means no limit.  Some implementations send max+6 (rules.md D14).
    """
    pdu = event.pdu
    assoc = event.assoc
    if not isinstance(pdu, PDataEnd) or assoc.assumed:
        return ()
    limit = assoc.max_pdu_acceptor if event.from_requestor else assoc.max_pdu_requestor
    if limit and pdu.length > limit:
        receiver = "acceptor" if event.from_requestor else "requestor"
        return (
            Problem(
                f"P-DATA-TF of {pdu.length} bytes; the {receiver} accepts at most {limit}",
                observed=str(pdu.length),
                expected=f"<= {limit}",
                frames=(pdu.first_frame, pdu.frame),
            ),
        )
    return ()


@association_rule("UL-PDV-EMPTY", W, "PS3.8 Annex E.1", events=["pdv"], origin="[P8]")
def pdv_empty(event: AssociationEvent) -> tuple[Problem, ...]:
    """PDV holding only a Message Control Header.

    "Individual PDVs shall not be sent with Presentation-data-value fields
    consisting only of a single byte containing a Message Control Header";
    receivers are recommended to accept them.
    """
    pdv = event.pdu
    if isinstance(pdv, Pdv) and pdv.length == 0:
        return (
            Problem(
                "PDV with no fragment bytes", observed="item-length 2", expected="item-length > 2"
            ),
        )
    return ()


@association_rule("UL-PDV-ODD", E, "PS3.8 Annex E.1", events=["pdv"], origin="[P8]")
def pdv_odd(event: AssociationEvent) -> tuple[Problem, ...]:
    """Message fragment with an odd number of bytes.

    "Each fragment of a message shall consist of an even number of bytes";
    DICOM elements are even-length, so an odd fragment splits one.
    """
    pdv = event.pdu
    if isinstance(pdv, Pdv) and pdv.length % 2:
        return (
            Problem(f"fragment of {pdv.length} bytes", observed=str(pdv.length), expected="even"),
        )
    return ()


@association_rule("UL-PDV-CTX-NOT-ACCEPTED", E, "PS3.8 §7.6.1", events=["pdv"], origin="[P8]")
def pdv_context_not_accepted(event: AssociationEvent) -> tuple[Problem, ...]:
    """PDV on a presentation context that was not accepted.

    The PDV's context ID "identifies one of the presentation contexts agreed
    to at association time"; without one, the abstract and transfer syntax of
    the data are undefined.  (Wireshark flags this too.)
    """
    pdv = event.pdu
    assoc = event.assoc
    if not isinstance(pdv, Pdv) or assoc.assumed or assoc.ac is None:
        return ()
    ctx = assoc.contexts.get(pdv.context_id)
    if ctx is None or not ctx.accepted:
        state = "never proposed" if ctx is None or ctx.result is None else "rejected"
        return (
            Problem(
                f"PDV on presentation context {pdv.context_id}, {state}",
                observed=str(pdv.context_id),
                expected="an accepted context",
            ),
        )
    return ()


@association_rule("UL-MCH-RESERVED", W, "PS3.8 Annex E.2", events=["pdv"], origin="[P8]")
def control_header_reserved(event: AssociationEvent) -> tuple[Problem, ...]:
    """Message Control Header with reserved bits 2-7 set.

    "Bits 2 through 7 are always set to 0 by the sender and never checked by
    the receiver"; Wireshark reports flags > 3 as well.
    """
    pdv = event.pdu
    if isinstance(pdv, Pdv) and pdv.control & 0xFC:
        return (
            Problem(
                f"control header {pdv.control:02X}H",
                observed=f"{pdv.control:02X}H",
                expected="00H-03H",
            ),
        )
    return ()


def _pdv_state(event: AssociationEvent) -> dict:
    """Per-direction bookkeeping: PDVs seen in the current P-DATA-TF."""
    key = ("pdu", event.from_requestor)
    state = event.scratch.get(key)  # not setdefault: that builds the default on every PDV
    if state is None:
        state = event.scratch[key] = {"pdvs": 0, "last": None, "ended": False}
    return state


@association_rule("UL-PDV-MIXED", E, "PS3.8 Annex E.1", events=["pdata", "pdv"], origin="[P8]")
def pdv_mixed(event: AssociationEvent) -> tuple[Problem, ...]:
    """One P-DATA-TF carries PDVs of different messages.

    "The PDVs contained in a P-DATA request primitive shall be related to the
    same DICOM message": a PDV after the last fragment of a message's data
    set (or of a command set that has no data set) starts another message.
    """
    state = _pdv_state(event)
    pdv = event.pdu
    if isinstance(pdv, PDataTF):
        state.update(pdvs=0, last=None, ended=False)
        return ()
    if not isinstance(pdv, Pdv):
        return ()
    problems: tuple[Problem, ...] = ()
    if state["ended"]:
        state["ended"] = False
        problems = (
            Problem(
                "PDV of a new message in the P-DATA-TF that ended the previous one",
                expected="one message per P-DATA-TF",
            ),
        )
    state["pdvs"] += 1
    # A last data fragment always ends a message; a last command fragment ends one only
    # when no data set follows, which is known later: be conservative and use data only.
    if pdv.control & 0x03 == 0x02:
        state["ended"] = True
    return problems


@association_rule("UL-MCH-CONSEC", I, "PS3.8 Annex E.1", events=["pdata", "pdv"], origin="[P8]")
def consecutive_same_type(event: AssociationEvent) -> tuple[Problem, ...]:
    """Two consecutive PDVs of the same type in one P-DATA-TF.

    It is "strongly recommended" not to do this; receivers "must be able to
    receive and process such PDVs", so this is information only.
    """
    key = ("consec", event.from_requestor)
    pdv = event.pdu
    if isinstance(pdv, PDataTF):
        event.scratch[key] = None
        return ()
    if not isinstance(pdv, Pdv):
        return ()
    previous = event.scratch.get(key)
    kind = pdv.control & 0x01
    event.scratch[key] = kind
    if previous is not None and previous == kind:
        return (
            Problem(
                f"two consecutive {'command' if kind else 'data'} PDVs in one P-DATA-TF",
                expected="one PDV per fragment type and P-DATA-TF",
            ),
        )
    return ()


@association_rule(
    "UL-PDATA-AFTER-RELEASE",
    E,
    "PS3.8 §7.2.2.1, §7.2.2.4",
    events=["release-rq", "release-rp", "pdata-end"],
    origin="[P8]",
)
def pdata_after_release(event: AssociationEvent) -> tuple[Problem, ...]:
    """P-DATA-TF sent after the sender's own release step.

    After its A-RELEASE-RQ the requestor "shall not issue any further
    primitives other than an A-ABORT"; after its A-RELEASE-RP the acceptor
    "shall not issue any further primitives ... including P-DATA".
    """
    if event.kind in ("release-rq", "release-rp"):
        event.scratch[("released", event.from_requestor)] = event.frame
        return ()
    since = event.scratch.get(("released", event.from_requestor))
    if since is not None:
        step = "A-RELEASE-RQ" if event.from_requestor else "A-RELEASE-RP"
        return (
            Problem(
                f"P-DATA-TF after its own {step} (frame {since})",
                frames=_pdu_frames(event),
                expected="no P-DATA after the release step",
            ),
        )
    return ()


@association_rule("UL-ROLE-NEG", E, "PS3.7 §D.3.3.4", events=["associate-ac"], origin="[P7]")
def role_negotiation(event: AssociationEvent) -> Iterator[Problem]:
    """SCP/SCU Role Selection answered wrongly.

    The acceptor "shall not return the value (1) if the Association-requester
    has not proposed the role", and omits the item for a SOP class the
    requestor did not list.
    """
    ac = _ac(event)
    if ac is None:
        return
    proposed = {r.sop_class_uid: r for r in event.assoc.rq.user_info.roles}  # type: ignore[union-attr]
    for role in ac.user_info.roles:
        asked = proposed.get(role.sop_class_uid)
        if asked is None:
            yield Problem(
                f"role selection for {role.sop_class_uid}, which the requestor did not propose",
                observed=role.sop_class_uid,
                expected="omitted",
            )
            continue
        for name, got, want in (
            ("SCU", role.scu_role, asked.scu_role),
            ("SCP", role.scp_role, asked.scp_role),
        ):
            if got == 1 and want != 1:
                yield Problem(
                    f"{name} role accepted for {role.sop_class_uid} but not proposed",
                    observed="1",
                    expected="0",
                )


RULES = (
    pdu_state,
    protocol_version,
    ae_blank,
    item_order,
    context_id_odd,
    context_id_duplicate,
    ac_result,
    ac_context_unknown,
    ac_context_missing,
    ac_transfer_syntax,
    rj_values,
    abort_values,
    abort_user_reason,
    max_length_item,
    pdata_max_length,
    pdv_empty,
    pdv_odd,
    pdv_context_not_accepted,
    control_header_reserved,
    pdv_mixed,
    consecutive_same_type,
    pdata_after_release,
    role_negotiation,
)
