"""The persistent shell: state, exit codes, timeouts, shell death, output caps. Real containers on both engines."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.container


def test_state_persists_between_calls(sandbox):
    sandbox.run("cd /tmp && export GREETING=hi")
    sandbox.run('greet() { echo "$GREETING, $1"; }')
    result = sandbox.run("echo $GREETING; pwd; greet you")
    assert result.output == "hi\n/tmp\nhi, you\n"
    assert result.exit_code == 0 and not result.timed_out and not result.truncated
    assert result.duration > 0


def test_exit_codes_and_stderr_merged_in_order(sandbox):
    assert sandbox.run("false").exit_code == 1
    assert sandbox.run("(exit 42)").exit_code == 42
    result = sandbox.run("echo out; echo err >&2; echo out2")
    assert result.output == "out\nerr\nout2\n"


def test_run_many_is_one_chunk_in_order(sandbox):
    results = sandbox.run_many(["echo a", "cd /etc", "pwd", "python3 -c 'print(1)'", "false"])
    assert [r.output for r in results] == ["a\n", "", "/etc\n", "1\n", ""]
    assert [r.exit_code for r in results] == [0, 0, 0, 0, 1]


def test_commands_cannot_read_the_control_stream(sandbox):
    result = sandbox.run("cat; read -r line; echo rc=$?", timeout=5)
    assert result.output == "rc=1\n" and not result.timed_out
    assert sandbox.run("echo fine").output == "fine\n"


def test_syntax_errors_and_quoting(sandbox):
    bad = sandbox.run("echo 'unterminated")
    assert bad.exit_code != 0 and "unexpected EOF" in bad.output
    tricky = "printf '%s\\n' \"it's\" '\\\\back' \"$((6*7))\" 'ünï ✓' $'tab\\there'"
    assert sandbox.run(tricky).output == "it's\n\\\\back\n42\nünï ✓\ntab\there\n"
    heredoc = sandbox.run("cat <<'EOF'\nline $HOME\nEOF")
    assert heredoc.output == "line $HOME\n"


def test_timeout_kills_the_call_and_keeps_the_session(sandbox):
    sandbox.run("cd /usr && export KEEP=1")
    started = time.monotonic()
    result = sandbox.run("sleep 100", timeout=1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 10
    after = sandbox.run("echo $KEEP; pwd; ps -eo comm | grep -c '^sleep$' || true")
    assert after.output == "1\n/usr\n0\n"
    assert not after.session_restarted


def test_timeout_kills_background_and_pipeline_children(sandbox):
    result = sandbox.run("sleep 300 & sleep 200 | cat", timeout=1)
    assert result.timed_out
    # Only the count counts: the shell may first report the background job it lost ("Killed  sleep 300").
    assert sandbox.run("ps -eo comm | grep -c '^sleep$' || true").output.splitlines()[-1] == "0"


def test_timeout_of_a_busy_builtin_restarts_the_shell(sandbox):
    result = sandbox.run("while :; do :; done", timeout=1)
    assert result.timed_out and result.session_restarted
    assert sandbox.run("echo alive").output == "alive\n"


def test_later_calls_of_a_chunk_run_after_a_timeout(sandbox):
    results = sandbox.run_many(["echo one", "sleep 50", "echo three"], timeout=[5, 1, 5])
    assert [r.timed_out for r in results] == [False, True, False]
    assert results[2].output == "three\n"


@pytest.mark.parametrize("killer", ["exit 3", "kill -9 $$", "exec true"])
def test_shell_death_restarts_the_session_and_says_so(sandbox, killer):
    sandbox.run("cd /tmp")
    results = sandbox.run_many(["echo before", killer, "echo after; pwd"])
    assert results[0].output == "before\n"
    assert results[1].session_restarted and "new shell session" in results[1].output
    assert results[2].output == "after\n/\n" and not results[2].session_restarted
    if killer == "exit 3":
        assert results[1].exit_code == 3


def test_output_cap_keeps_head_and_tail(backend):
    from rock_gym.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(backend=backend, output_limit=1000)) as sb:
        result = sb.run("echo START; seq 1 200000; echo END")
        assert result.truncated
        assert result.output.startswith("START\n1\n2\n") and result.output.endswith("199999\n200000\nEND\n")
        assert "bytes omitted" in result.output and len(result.output) < 1200
        assert sb.run("echo small").output == "small\n"


def test_binary_and_huge_output_is_decoded_with_replacement(sandbox):
    binary = sandbox.run("printf 'ok\\xff\\xfe\\x00end\\n'")
    assert binary.output == "ok\ufffd\ufffd\x00end\n"
    flood = sandbox.run("head -c 50000000 /dev/zero | tr '\\0' x; echo; echo done", timeout=60)
    assert flood.truncated and flood.output.endswith("done\n") and flood.exit_code == 0
