"""Upper-layer rule cases: hand-made conversations through the whole pipeline.

Each rule has a conversation where it must fire and a near miss where it
must not.  A conversation is a list of (sender, bytes) with sender ``c``
(client, the association requestor) or ``s`` (server); it is cut into TCP
segments and analysed exactly like a capture file.
"""

from __future__ import annotations

import pytest

from tests import build
from tests.conversation import Conversation, analyse

E = build.ECHO_CONTEXT
VER = "1.2.840.10008.1.1"
IVR = "1.2.840.10008.1.2"
EVR = "1.2.840.10008.1.2.1"


def exchange(rq=None, ac=None, middle=None, end=None):
    """RQ, AC, C-ECHO, release — with any part replaced."""
    return [
        ("c", rq if rq is not None else build.associate_rq(contexts=E)),
        ("s", ac if ac is not None else build.associate_ac()),
        *(middle if middle is not None else [("c", build.echo_rq()), ("s", build.echo_rsp())]),
        *(end if end is not None else [("c", build.release_rq()), ("s", build.release_rp())]),
    ]


def rq_items_out_of_order() -> bytes:
    """An A-ASSOCIATE-RQ whose User Information item comes before the context."""
    good = build.associate_rq(contexts=E)
    fixed, items = good[:74], good[74:]
    app = items[: 4 + int.from_bytes(items[2:4], "big")]
    rest = items[len(app) :]
    ctx = rest[: 4 + int.from_bytes(rest[2:4], "big")]
    user = rest[len(ctx) :]
    return fixed + app + user + ctx


def two_max_length() -> bytes:
    return build.associate_rq(contexts=E, extra_user_items=build.item(0x51, b"\x00\x00\x40\x00"))


PDV_MIXED = build.p_data(
    build.pdv(1, 0x03, build.echo_rq()[12:]),
    build.pdv(1, 0x03, build.echo_rq(2)[12:]),
)
ROLE = build.role_item(VER, 1, 0)

CASES: dict[str, tuple[list, list]] = {
    "UL-PDU-STATE": (
        [
            ("c", build.associate_rq(contexts=E)),
            ("c", build.echo_rq()),
            ("s", build.associate_ac()),
            ("s", build.echo_rsp()),
        ],
        exchange(),
    ),
    "UL-PROTO-VERSION": (
        exchange(rq=build.associate_rq(contexts=E, version=2)),
        exchange(rq=build.associate_rq(contexts=E, version=3)),
    ),
    "UL-AE-BLANK": (
        exchange(rq=build.associate_rq(called="", contexts=E)),
        exchange(rq=build.associate_rq(called="X", contexts=E)),
    ),
    "UL-ITEM-ORDER": (exchange(rq=rq_items_out_of_order()), exchange()),
    "UL-PCTX-ID": (
        exchange(
            rq=build.associate_rq(contexts=((2, VER, (IVR,)),)),
            ac=build.associate_ac(results=((2, 0, IVR),)),
            middle=[("c", build.echo_rq(ctx=2)), ("s", build.echo_rsp(ctx=2))],
        ),
        exchange(
            rq=build.associate_rq(contexts=((3, VER, (IVR,)),)),
            ac=build.associate_ac(results=((3, 0, IVR),)),
            middle=[("c", build.echo_rq(ctx=3)), ("s", build.echo_rsp(ctx=3))],
        ),
    ),
    "UL-PCTX-ID-DUP": (
        exchange(rq=build.associate_rq(contexts=E + E)),
        exchange(rq=build.associate_rq(contexts=E + ((3, VER, (IVR,)),))),
    ),
    "UL-AC-RESULT": (
        exchange(ac=build.associate_ac(results=((1, 9, IVR),))),
        exchange(ac=build.associate_ac(results=((1, 4, IVR),)), middle=[]),
    ),
    "UL-AC-CTX-UNKNOWN": (
        exchange(ac=build.associate_ac(results=((1, 0, IVR), (5, 0, IVR)))),
        exchange(),
    ),
    "UL-AC-CTX-MISSING": (
        exchange(rq=build.associate_rq(contexts=E + ((3, VER, (IVR,)),))),
        exchange(
            rq=build.associate_rq(contexts=E + ((3, VER, (IVR,)),)),
            ac=build.associate_ac(results=((1, 0, IVR), (3, 3, IVR))),
        ),
    ),
    "UL-AC-TS": (
        exchange(ac=build.associate_ac(results=((1, 0, EVR),))),
        exchange(
            rq=build.associate_rq(contexts=((1, VER, (IVR, EVR)),)),
            ac=build.associate_ac(results=((1, 0, EVR),)),
        ),
    ),
    "UL-RJ-VALUES": (
        [("c", build.associate_rq(contexts=E)), ("s", build.pdu(0x03, bytes([0, 1, 1, 5])))],
        [("c", build.associate_rq(contexts=E)), ("s", build.pdu(0x03, bytes([0, 1, 1, 7])))],
    ),
    "UL-ABORT-VALUES": (
        exchange(end=[("s", build.abort(2, 9))]),
        exchange(end=[("s", build.abort(2, 6))]),
    ),
    "UL-ABORT-USER-REASON": (
        exchange(end=[("c", build.abort(0, 3))]),
        exchange(end=[("c", build.abort(0, 0))]),
    ),
    "UL-MAXLEN-ITEM": (exchange(rq=two_max_length()), exchange()),
    "UL-PDV-MAXLEN": (
        exchange(
            ac=build.associate_ac(max_pdu=4096),
            middle=[
                ("c", build.p_data(build.pdv(1, 0x01, b"x" * 5000)) + build.echo_rq()),
                ("s", build.echo_rsp()),
            ],
        ),
        exchange(
            ac=build.associate_ac(max_pdu=4096),
            middle=[
                ("c", build.p_data(build.pdv(1, 0x01, b"x" * 4090)) + build.echo_rq()),
                ("s", build.echo_rsp()),
            ],
        ),
    ),
    "UL-PDV-EMPTY": (
        exchange(
            middle=[
                ("c", build.p_data(build.pdv(1, 0x01, b"")) + build.echo_rq()),
                ("s", build.echo_rsp()),
            ]
        ),
        exchange(),
    ),
    "UL-PDV-ODD": (
        exchange(middle=[("c", build.p_data(build.pdv(1, 0x01, b"x"))), ("s", build.echo_rsp())]),
        exchange(middle=[("c", build.p_data(build.pdv(1, 0x01, b"xy"))), ("s", build.echo_rsp())]),
    ),
    "UL-PDV-CTX-NOT-ACCEPTED": (
        exchange(middle=[("c", build.echo_rq(ctx=3)), ("s", build.echo_rsp(ctx=3))]),
        exchange(),
    ),
    "UL-MCH-RESERVED": (
        exchange(middle=[("c", build.echo_rq(control=0x13)), ("s", build.echo_rsp())]),
        exchange(),
    ),
    "UL-PDV-MIXED": (
        exchange(
            middle=[
                (
                    "c",
                    build.p_data(
                        build.pdv(1, 0x01, b"ab"),
                        build.pdv(1, 0x02, b"cd"),
                        build.pdv(1, 0x01, b"ef"),
                    ),
                )
            ]
        ),
        exchange(
            middle=[("c", build.p_data(build.pdv(1, 0x01, b"ab"), build.pdv(1, 0x02, b"cd")))]
        ),
    ),
    "UL-MCH-CONSEC": (exchange(middle=[("c", PDV_MIXED), ("s", build.echo_rsp())]), exchange()),
    "UL-PDATA-AFTER-RELEASE": (
        exchange(
            end=[("c", build.release_rq()), ("c", build.echo_rq(2)), ("s", build.release_rp())]
        ),
        exchange(
            end=[("c", build.release_rq()), ("s", build.echo_rsp(5)), ("s", build.release_rp())]
        ),
    ),
    "UL-ROLE-NEG": (
        exchange(ac=build.associate_ac(extra_user_items=ROLE)),
        exchange(
            rq=build.associate_rq(contexts=E, extra_user_items=ROLE),
            ac=build.associate_ac(extra_user_items=ROLE),
        ),
    ),
}


def run_conversation(script: list[tuple[str, bytes]]) -> list[dict]:
    conv = Conversation()
    for who, data in script:
        conv.send(who == "c", data)
    conv.close()
    return analyse(conv.frames)["violations"]


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_fires(rule_id):
    fires, _ = CASES[rule_id]
    found = [v for v in run_conversation(fires) if v["rule"] == rule_id]
    assert found, f"{rule_id} did not fire"
    assert all(v["first_frame"] > 3 for v in found)  # never the handshake


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_passes(rule_id):
    _, passes = CASES[rule_id]
    found = [v for v in run_conversation(passes) if v["rule"] == rule_id]
    assert found == [], [v["message"] for v in found]
