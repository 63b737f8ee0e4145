"""Files in and out through the engine's archive API."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.container


def test_text_round_trip_and_parents_created(sandbox):
    sandbox.write_file("/testbed/pkg/deep/a.py", "print('ünï')\n")
    assert sandbox.read_file("/testbed/pkg/deep/a.py") == "print('ünï')\n"
    assert sandbox.run("python3 /testbed/pkg/deep/a.py").output == "ünï\n"
    assert sandbox.run("stat -c %a /testbed/pkg/deep /tmp").output == "755\n1777\n"


def test_binary_round_trip_and_mode(sandbox):
    blob = bytes(range(256)) * 1000
    sandbox.write_file("/data/blob.bin", blob, mode=0o600)
    assert sandbox.read_file("/data/blob.bin", binary=True) == blob
    assert sandbox.run("stat -c %a /data/blob.bin; wc -c < /data/blob.bin").output == "600\n256000\n"


def test_relative_paths_resolve_against_workdir(backend):
    from rock_gym.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(backend=backend, workdir="/work")) as sb:
        sb.write_file("notes/todo.txt", "x")
        assert sb.run("pwd; cat notes/todo.txt").output == "/work\nx"
        assert sb.read_file("./notes/../notes/todo.txt") == "x"


def test_missing_path_and_directory_give_clear_errors(sandbox):
    with pytest.raises(FileNotFoundError, match="/nope/missing.txt"):
        sandbox.read_file("/nope/missing.txt")
    with pytest.raises(IsADirectoryError, match="/etc"):
        sandbox.read_file("/etc")
    with pytest.raises(FileNotFoundError, match="nothing to upload"):
        sandbox.upload("/definitely/not/here", "/testbed")


def test_upload_a_directory_tree(sandbox, tmp_path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("VALUE = 7\n")
    (tmp_path / "src" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(tmp_path / "src" / "run.sh", 0o755)
    (tmp_path / "src" / "empty").mkdir()
    sandbox.upload(tmp_path / "src", "/testbed")
    listing = sandbox.run("cd /testbed && find . | sort && ./run.sh && python3 -c 'import pkg; print(pkg.VALUE)'")
    assert listing.output == ".\n./empty\n./pkg\n./pkg/__init__.py\n./run.sh\nran\n7\n"
    assert listing.exit_code == 0


def test_download(sandbox, tmp_path):
    sandbox.run("mkdir -p /out/d && echo hi > /out/d/f.txt")
    local = sandbox.download("/out/d", tmp_path)
    assert (local / "f.txt").read_text() == "hi\n"
