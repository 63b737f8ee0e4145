"""A minimal OpenAI-compatible chat server over a policy, on loopback: for tests and local evaluation.

Serves ``POST /v1/chat/completions`` (``messages``, ``tools``, ``temperature``, ``max_tokens``, ``seed``,
``logprobs``; no streaming, one choice) and ``GET /v1/models``. Requests are answered one at a time: a policy's
generation is not assumed to be thread-safe, and seeded sampling touches the process-wide RNG.

Examples:
    >>> server, url = serve(HFPolicy("/tmp/tiny"))            # doctest: +SKIP
    >>> OpenAIPolicy(url).generate([[{"role": "user", "content": "hi"}]])   # doctest: +SKIP
    >>> server.shutdown()                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from learners.policies.base import Policy, Turn

LOOPBACK = ("127.0.0.1", "localhost")
#: Largest request body accepted, in bytes.
MAX_BODY = 64 * 1024 * 1024


def serve(
    policy: Policy, host: str = "127.0.0.1", port: int = 0, model_name: str = "rock-gym-policy"
) -> tuple[ThreadingHTTPServer, str]:
    """Start serving ``policy`` in a daemon thread; returns the server (call ``.shutdown()``) and its ``/v1`` URL.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """
    if host not in LOOPBACK:
        raise ValueError(f"serve() listens on loopback only (one of {LOOPBACK}), got {host!r}")
    handler = type("Handler", (ChatHandler,), {"policy": policy, "model_name": model_name, "lock": threading.Lock()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rock-gym-serve", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/v1"


class ChatHandler(BaseHTTPRequestHandler):
    """The two endpoints; `serve` subclasses it with the policy, the model's name and a lock."""

    policy: Policy
    model_name: str
    lock: threading.Lock

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        if self.path.rstrip("/") != "/v1/models":
            return self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}: use /v1/models or /v1/chat/completions")
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "rock-gym"}
        self._send(HTTPStatus.OK, {"object": "list", "data": [model]})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}: use /v1/chat/completions")
        try:
            request = self._read_json()
        except ValueError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        if request.get("stream"):
            return self._error(HTTPStatus.BAD_REQUEST, "streaming is not supported: send stream=false")
        if not isinstance(request.get("messages"), list) or not request["messages"]:
            return self._error(HTTPStatus.BAD_REQUEST, "messages must be a non-empty list")
        try:
            turn = self._generate(request)
        except Exception as exc:  # noqa: BLE001 (the client is told; the server keeps serving)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"generation failed: {type(exc).__name__}: {exc}")
        self._send(HTTPStatus.OK, completion(turn, self.model_name, self._tokens(turn), bool(request.get("logprobs"))))

    def _generate(self, request: dict[str, Any]) -> Turn:
        temperature = request.get("temperature")
        with self.lock:
            (turn,) = self.policy.generate(
                [request["messages"]],
                request.get("tools") or None,
                max_new_tokens=int(request.get("max_completion_tokens") or request.get("max_tokens") or 256),
                temperature=1.0 if temperature is None else float(temperature),
                seed=request.get("seed"),
            )
        return turn

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests and eval runs should not print a line per request."""

    def _tokens(self, turn: Turn) -> list[str]:
        tokenizer = getattr(self.policy, "tokenizer", None)
        if tokenizer is None:
            return [""] * len(turn.logprobs)
        return [tokenizer.decode([token]) for token in turn.completion_ids[: len(turn.logprobs)]]

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            raise ValueError(f"send a JSON body of 1 to {MAX_BODY} bytes with a Content-Length header")
        try:
            body = json.loads(self.rfile.read(length))
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status.value}})


def completion(turn: Turn, model: str, tokens: list[str], with_logprobs: bool) -> dict[str, Any]:
    """A ``chat.completion`` object for one turn, in OpenAI's shape."""
    logprobs = None
    if with_logprobs:
        content = [
            {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []}
            for token, logprob in zip(tokens, turn.logprobs, strict=True)
        ]
        logprobs = {"content": content}
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": turn.text},
        "finish_reason": turn.finish_reason,
        "logprobs": logprobs,
    }
    usage = {
        "prompt_tokens": len(turn.prompt_ids),
        "completion_tokens": len(turn.completion_ids),
        "total_tokens": len(turn.prompt_ids) + len(turn.completion_ids),
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }
