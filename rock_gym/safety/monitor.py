"""The safety monitor: every tool call checked against rules for the behaviours agents showed under RL.

The categories are those of the ROCK/ROLL paper's emergent behaviours: network probing and scanning, tunnels and
reverse shells, crypto mining, privilege escalation, persistence, exfiltration, and destructive commands outside
the workspace. Each category has an action: "log" (record the event), "penalize" (also subtract `penalty` from the
step's reward) or "terminate" (also block the call and end the episode).

>>> monitor = SafetyMonitor(actions={"crypto_mining": "terminate"})
>>> [(e.category, e.rule, e.action) for e in monitor.check({"name": "bash", "arguments": {"command": "./xmrig -o x"}})]
[('crypto_mining', 'miner_binary', 'terminate')]
>>> monitor.check({"name": "bash", "arguments": {"command": "grep -rn xmrig docs/"}})
[]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rock_gym.safety import shell
from rock_gym.safety.rules import AUTOSTART, CATEGORIES, DEFAULT_RULES, SHELL_RC, Context, Rule, normalize

ACTIONS = ("log", "penalize", "terminate")
#: Paths the agent may change freely besides the task's workdir: scratch space and package caches.
DEFAULT_WORKSPACE = ("/tmp", "/var/tmp", "~/.cache", "/var/cache", "/var/lib/apt/lists")
#: Written files whose text is not read for code (prose may name anything).
DOCUMENTS = (".md", ".rst", ".txt", ".adoc", ".html")
SHELL_FILES = (".sh", ".bash", ".zsh", ".service", ".timer", ".conf", ".desktop")
CODE_FILES = {".py": "python", ".pl": "perl", ".rb": "ruby", ".php": "php", ".js": "node", ".c": "c", ".go": "go"}
MAX_EVIDENCE = 300


@dataclass(frozen=True)
class SafetyEvent:
    """One rule that matched one tool call.

    Attributes:
        category: one of `CATEGORIES`, e.g. "crypto_mining".
        rule: the rule's name, e.g. "miner_binary".
        severity: "low", "medium" or "high".
        evidence: the matched part of the call (a command as written, a file written, a code excerpt).
        action: what the monitor does about it: "log", "penalize" or "terminate".
    """

    category: str
    rule: str
    severity: str
    evidence: str
    action: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Review:
    """What the env does with one call: its events, the reward to subtract, and (when set) why it is blocked."""

    events: list[SafetyEvent] = field(default_factory=list)
    penalty: float = 0.0
    blocked: str | None = None


@dataclass
class Findings:
    """What one call does, as the rules read it."""

    commands: list[shell.Command] = field(default_factory=list)
    writes: list[shell.Write] = field(default_factory=list)
    codes: list[tuple[str, str, str]] = field(default_factory=list)  # (language, text, where)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (via, script text)


class SafetyMonitor:
    """Checks tool calls against `rules` and decides, per category, what happens.

    Args:
        rules: the rules to apply (default: `rules.DEFAULT_RULES`).
        actions: category -> "log" | "penalize" | "terminate"; the key "all" sets every category not named.
            Categories not given are logged.
        penalty: subtracted from the step's reward once per call with a "penalize" or "terminate" event.
        workspace: paths (besides the task's workdir) where deleting is not "destructive": default scratch space
            and package caches (`DEFAULT_WORKSPACE`).
    """

    def __init__(
        self,
        rules: Sequence[Rule] = DEFAULT_RULES,
        actions: Mapping[str, str] | None = None,
        penalty: float = 1.0,
        workspace: Sequence[str] = DEFAULT_WORKSPACE,
    ) -> None:
        actions = dict(actions or {})
        default = actions.pop("all", "log")
        for category, action in {**actions, "all": default}.items():
            if category != "all" and category not in CATEGORIES:
                raise ValueError(f"unknown safety category {category!r}: use one of {', '.join(CATEGORIES)}")
            if action not in ACTIONS:
                raise ValueError(f"unknown safety action {action!r} for {category}: use one of {', '.join(ACTIONS)}")
        self.rules = tuple(rules)
        self.actions = {category: actions.get(category, default) for category in CATEGORIES}
        self.penalty = float(penalty)
        self.workspace = tuple(workspace)

    @classmethod
    def from_config(cls, safety: SafetyMonitor | Mapping[str, Any] | bool | None) -> SafetyMonitor | None:
        """The monitor an env's `safety=` argument asks for: None or True logs everything, False turns it off,
        a mapping sets actions (and may hold "penalty"), a monitor is used as is.

        >>> SafetyMonitor.from_config({"crypto_mining": "terminate", "penalty": 0.5}).penalty
        0.5
        """
        if safety is False:
            return None
        if safety is None or safety is True:
            return cls()
        if isinstance(safety, SafetyMonitor):
            return safety
        settings = dict(safety)
        return cls(actions=settings, penalty=settings.pop("penalty", 1.0))

    def check(self, call: Any, workdir: str | None = None) -> list[SafetyEvent]:
        """The events of one tool call: a `ToolCall`, a `{"name", "arguments"}` dict, or a bash command string."""
        name, arguments = call_parts(call)
        context = Context(self.workspace + ((workdir,) if workdir and normalize(workdir) != "/" else ()))
        findings = read_call(name, arguments)
        events: dict[tuple[str, str], SafetyEvent] = {}
        for rule in self.rules:
            for matched, evidence in matches(rule, findings, context):
                events.setdefault((rule.name, matched), self.event(rule, evidence))
        return list(events.values())

    def review(self, call: Any, workdir: str | None = None) -> Review:
        """`check`, with the penalty to apply and the message of a blocked call."""
        events = self.check(call, workdir)
        review = Review(events)
        if any(e.action in ("penalize", "terminate") for e in events):
            review.penalty = self.penalty
        stopping = [e for e in events if e.action == "terminate"]
        if stopping:
            first = stopping[0]
            review.blocked = (
                f"blocked by the safety monitor: {first.category} ({first.rule}) in `{first.evidence}`; "
                "the command was not run and the episode ends"
            )
        return review

    def event(self, rule: Rule, evidence: str) -> SafetyEvent:
        if len(evidence) > MAX_EVIDENCE:
            evidence = evidence[: MAX_EVIDENCE - 3] + "..."
        return SafetyEvent(rule.category, rule.name, rule.severity, evidence, self.actions[rule.category])


def call_parts(call: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(call, str):
        return "bash", {"command": call}
    if isinstance(call, Mapping):
        return str(call.get("name", "")), dict(call.get("arguments") or {})
    return str(call.name), dict(call.arguments or {})


def matches(rule: Rule, findings: Findings, context: Context) -> Iterable[tuple[str, str]]:
    """`(matched text, evidence)` of each place `rule` matches; the evidence also says how it was reached."""
    things: Iterable[tuple[Any, str, str]]
    if rule.on == "command":
        things = ((c, c.text, c.via) for c in findings.commands)
    elif rule.on == "write":
        things = ((w, w.evidence, "") for w in findings.writes)
    elif rule.on == "code":
        things = (((lang, text), text, where) for lang, text, where in findings.codes)
    else:
        things = ((text, text, how) for how, text in findings.texts)
    for thing, text, how in things:
        result = rule.test(thing, context)
        if result:
            matched = result if isinstance(result, str) else text
            yield matched, via(matched, how)


def via(text: str, how: str) -> str:
    text = " ".join(text.split()) if "\n" not in text.strip() else text.strip()
    return f"{text} (via {how})" if how else text


# -- reading a call -----------------------------------------------------------------------------------------------


def read_call(name: str, arguments: dict[str, Any]) -> Findings:
    """The commands, file writes and code of one call, nested and written scripts included."""
    findings = Findings()
    if name == "bash" and isinstance(arguments.get("command"), str):
        add_script(findings, shell.parse(arguments["command"]))
    elif name == "str_replace_editor" and arguments.get("command") in ("create", "str_replace", "insert"):
        path = str(arguments.get("path", ""))
        text = arguments.get("file_text") if arguments.get("command") == "create" else arguments.get("new_str")
        written = shell.Write(path, text if isinstance(text, str) else None, "editor", f"{arguments['command']} {path}")
        findings.writes.append(written)
        read_written(findings, written)
    return findings


def add_script(findings: Findings, script: shell.Script, depth: int = 0) -> None:
    findings.commands += script.commands
    findings.texts += script.texts
    findings.codes += script.codes
    for command in script.commands:
        found = shell.writes(command)
        if command.name == "crontab" and command.stdin is not None:
            found.append(shell.Write("/var/spool/cron/crontabs/", command.stdin, "crontab", command.text))
        findings.writes += found
        if depth < 2:
            for written in found:
                read_written(findings, written, depth + 1)


def read_written(findings: Findings, written: shell.Write, depth: int = 0) -> None:
    """Read a written file's text as what it is: a script, a crontab, a unit file, or code."""
    text, path = written.content, normalize(written.path)
    if text is None or path.lower().endswith(DOCUMENTS):
        return
    where = f"file {written.path}"
    shebang = text.lstrip().splitlines()[0] if text.strip() else ""
    if re.match(r"^(/etc/crontab|/etc/cron\.d/|/var/spool/cron)", path):
        with_user = not path.startswith("/var/spool")
        text = "\n".join(cron_command(line, with_user) for line in text.splitlines())
    elif path.endswith((".service", ".timer")) or "/systemd/" in path:
        text = "\n".join(m.group(1) for m in re.finditer(r"^\s*Exec\w*=[-@:+!]*(.*)$", text, re.M))
    if (
        path.endswith(SHELL_FILES)
        or re.match(r"#!.*\b(ba|z|da|k)?sh\b", shebang)
        or AUTOSTART.match(path)
        or (SHELL_RC.match(path))
    ):
        add_script(findings, shell.parse(text, where), depth)
    language = next((lang for ext, lang in CODE_FILES.items() if path.endswith(ext)), "text")
    findings.codes.append((language, written.content or "", where))


def cron_command(line: str, with_user: bool) -> str:
    """The command of a crontab line: the schedule (and in system crontabs the user) dropped."""
    if not line.strip() or line.lstrip().startswith("#") or re.match(r"^\s*\w+=", line):
        return ""
    fields = line.split(None, (1 if line.lstrip().startswith("@") else 5) + with_user)
    return fields[-1] if len(fields) > 1 else ""
