"""The command line: outputs, exit codes, one-line errors, help and README in step."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from dimsesniff.cli import app
from tests import build
from tests.conversation import Conversation

runner = CliRunner()
README = (Path(__file__).parent.parent / "README.md").read_text()


def write_pcap(path: Path, frames) -> Path:
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts, _lt, frame in frames:
            fh.write(struct.pack("<IIII", int(ts), 0, len(frame), len(frame)) + frame)
    return path


def echo_capture(tmp_path: Path, *, bad: bool = False) -> Path:
    conv = Conversation()
    conv.client_sends(build.associate_rq(contexts=build.ECHO_CONTEXT))
    conv.server_sends(build.associate_ac())
    ctx = 3 if bad else 1  # context 3 was never negotiated: UL-PDV-CTX-NOT-ACCEPTED
    conv.client_sends(build.echo_rq(ctx=ctx))
    conv.server_sends(build.echo_rsp(ctx=ctx))
    conv.client_sends(build.release_rq())
    conv.server_sends(build.release_rp())
    conv.close()
    return write_pcap(tmp_path / "echo.pcap", conv.frames)


def test_analyze_writes_three_tables(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(echo_capture(tmp_path)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    messages = pd.read_csv(out / "messages.csv")
    assert list(messages["command"]) == ["C-ECHO-RQ", "C-ECHO-RSP"]
    assert len(pd.read_csv(out / "associations.csv")) == 1
    assert len(pd.read_csv(out / "violations.csv")) == 0
    assert "C-ECHO-RSP" in result.output


def test_gzip_input(tmp_path):
    plain = echo_capture(tmp_path)
    packed = tmp_path / "echo.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    result = runner.invoke(app, ["analyze", str(packed), "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 0
    assert len(pd.read_csv(tmp_path / "o" / "messages.csv")) == 2


def test_not_a_capture_is_one_line_and_exit_2(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("<html>hello</html>")
    result = runner.invoke(app, ["analyze", str(bogus), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "not a pcap or pcapng file" in result.output
    assert "Traceback" not in result.output


def test_missing_file_exit_2(tmp_path):
    result = runner.invoke(app, ["analyze", str(tmp_path / "nope.pcap"), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "No such file" in result.output


def test_fail_on_and_select(tmp_path):
    capture = str(echo_capture(tmp_path, bad=True))
    out = str(tmp_path / "o")
    assert runner.invoke(app, ["analyze", capture, "-o", out, "-q"]).exit_code == 1
    assert (
        runner.invoke(app, ["analyze", capture, "-o", out, "-q", "--fail-on", "never"]).exit_code
        == 0
    )
    assert (
        runner.invoke(app, ["analyze", capture, "-o", out, "-q", "--ignore", "UL"]).exit_code == 0
    )
    assert len(pd.read_csv(Path(out) / "violations.csv")) == 0
    result = runner.invoke(app, ["analyze", capture, "-o", out, "--select", "NOSUCH"])
    assert result.exit_code == 2 and "no rule matches" in result.output


def test_rules_list_and_explain():
    result = runner.invoke(app, ["rules"])
    assert result.exit_code == 0 and "UL-PDV-MAXLEN" in result.output
    result = runner.invoke(app, ["rules", "UL-PDV-MAXLEN"])
    assert result.exit_code == 0 and "PS3.8" in result.output
    assert runner.invoke(app, ["rules", "NOPE"]).exit_code == 2


def test_every_command_has_help_and_is_in_readme():
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Example" in result.output or name == "version"
        assert f"dimsesniff {name}" in README or name == "version", name


def test_rotated_pieces_given_in_glob_order_are_put_in_capture_order(tmp_path: Path) -> None:
    """tcpdump -C names pieces f, f1 .. f11; a shell glob gives f f1 f10 f11 f2 ..."""
    from dimsesniff.sources import read_frames
    from fuzz.mutators import pcap_bytes

    def write(path: Path, part: list) -> Path:
        path.write_bytes(pcap_bytes(part))  # microsecond timestamps kept
        return path

    whole = Path(__file__).parent.parent / "samples" / "pynetdicom-move.pcap"
    frames = [(ts, frame) for ts, _lt, frame in read_frames(whole)]
    size = -(-len(frames) // 12)
    pieces = [
        write(tmp_path / ("cap" if k == 0 else f"cap{k}"), frames[k * size : (k + 1) * size])
        for k in range(12)
    ]
    glob_order = sorted(pieces, key=lambda p: p.name)
    assert glob_order != pieces  # cap10 before cap2: the case this test is about
    out_whole, out_pieces = tmp_path / "whole", tmp_path / "pieces"
    reference = write(tmp_path / "whole.pcap", frames)
    assert (
        runner.invoke(
            app, ["analyze", str(reference), "-o", str(out_whole), "--phi-key", "k"]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        app, ["analyze", *map(str, glob_order), "-o", str(out_pieces), "--phi-key", "k"]
    )
    assert result.exit_code == 0, result.output
    assert "order of their first packets" in result.output
    for table in ("messages.csv", "associations.csv", "violations.csv"):
        assert (out_pieces / table).read_bytes() == (out_whole / table).read_bytes(), table
    # Given in capture order: nothing to say.
    again = runner.invoke(app, ["analyze", *map(str, pieces), "-o", str(tmp_path / "again")])
    assert "order of their first packets" not in again.output
