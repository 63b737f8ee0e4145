"""The session's pure parts, without an engine: quoting, frame decoding, output capping."""

from __future__ import annotations

import struct
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from rock_gym.sandbox.session import CappedOutput, FrameDecoder, bash_quote


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=200))
def test_bash_quote_round_trips_through_real_bash(text):
    text = text.replace("\x00", "")  # bash strings cannot hold NUL
    script = b"printf %s " + bash_quote(text)
    done = subprocess.run(["bash", "-c", script.decode()], capture_output=True, check=True)
    assert done.stdout == text.encode("utf-8", errors="surrogateescape")


def test_frame_decoder_handles_split_frames_of_both_streams():
    frames = b"".join(struct.pack(">BxxxI", stream, len(p)) + p for stream, p in [(1, b"hello "), (2, b"world")])
    decoder = FrameDecoder()
    out = b"".join(decoder.feed(frames[i : i + 3]) for i in range(0, len(frames), 3))
    assert out == b"hello world"


def test_capped_output_keeps_everything_under_the_limit():
    out = CappedOutput(100)
    for _ in range(10):
        out.add(b"x" * 10)
    assert out.text() == "x" * 100 and not out.overflow


def test_capped_output_keeps_head_and_tail_over_the_limit():
    out = CappedOutput(100)
    out.add(b"H" * 60)
    for _ in range(1000):
        out.add(b"m" * 7)
    out.add(b"T" * 50)
    text = out.text()
    assert out.overflow
    assert text.startswith("H" * 50) and text.endswith("T" * 50)
    assert f"[... {60 + 7000 + 50 - 100} bytes omitted" in text
