"""Read a bash command the way bash would: simple commands, their words, redirections and pipelines, and the scripts
nested inside (`$(...)`, backticks, `bash -c`, `eval`, here-documents, payloads decoded by `base64 -d` and piped
to a shell). Only reading: nothing is run, and nothing here raises on malformed input.

>>> [c.words for c in parse("cd /repo && echo $(whoami) | sudo tee -a out.txt").commands]
[['cd', '/repo'], ['whoami'], ['echo', '$(whoami)'], ['tee', '-a', 'out.txt']]
"""

from __future__ import annotations

import base64
import binascii
import codecs
import itertools
import re
from dataclasses import dataclass, field

OPERATORS = ("&&", "||", ";;", "|&", ";", "&", "|", "\n", "(", ")")
REDIRECTS = ("<<<", "<<-", "<<", "<>", "&>>", "&>", ">>", ">&", "<&", ">|", ">", "<")
RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time", "esac"}
SKIPPED = {"for", "select", "case", "function", "in"}  # loop heads and patterns: no command runs there
SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "csh", "tcsh", "busybox"}
INTERPRETERS = {"python": "-c", "python2": "-c", "python3": "-c", "pypy": "-c", "pypy3": "-c", "perl": "-e",
                "ruby": "-e", "php": "-r", "node": "-e", "nodejs": "-e", "lua": "-e"}  # fmt: skip
#: Commands that run the command after their own options: stripped (and remembered) to find the real command.
WRAPPERS = {
    "sudo": "ugpCDhrtT",  # short options that take an argument
    "doas": "uC",
    "env": "uSC",
    "nohup": "",
    "nice": "n",
    "ionice": "cnp",
    "timeout": "sk",
    "command": "",
    "builtin": "",
    "exec": "a",
    "setsid": "",
    "stdbuf": "ioe",
    "xargs": "IdaLnPsEe",
    "watch": "nd",
    "torsocks": "",
    "proxychains": "f",
    "proxychains4": "f",
    "npx": "p",
    "uvx": "",
    "chronic": "",
    "unbuffer": "",
    "caffeinate": "",
}
DECODERS = {"base64", "base32", "xxd", "rev", "openssl"}
MAX_DEPTH = 8


@dataclass
class Token:
    kind: str  # "word", "op" or "redir"
    value: str
    start: int
    end: int
    subs: list[str] = field(default_factory=list)  # scripts of $(...), backticks, <(...) inside a word
    body: str | None = None  # a here-document's text


@dataclass
class Command:
    """One simple command, after leading assignments and wrappers (`sudo`, `nohup`, `timeout 5`, `xargs`, ...).

    Attributes:
        words: the command word and its arguments, quotes removed (`$(...)` kept as written).
        text: the command as written in its script (the evidence a rule quotes).
        redirects: `(operator, target)` pairs, e.g. `(">>", "~/.bashrc")`, `(">&", "/dev/tcp/10.0.0.1/4444")`.
        wrappers: the wrappers stripped off, outermost first.
        pipeline: every stage of this command's pipeline (this one included), in order.
        background: whether the pipeline ends with `&`.
        via: how the command was reached: "" at top level, else e.g. "bash -c", "$(...)", "base64 | sh".
        stdin: the text fed to its standard input when it is known (here-string, here-document, `echo ... |`).
    """

    words: list[str]
    text: str
    redirects: list[tuple[str, str]] = field(default_factory=list)
    wrappers: list[str] = field(default_factory=list)
    pipeline: list[Command] = field(default_factory=list, repr=False)
    background: bool = False
    via: str = ""
    stdin: str | None = None

    @property
    def name(self) -> str:
        """The command word's basename, e.g. "nmap" for `/usr/bin/nmap`."""
        return self.words[0].rsplit("/", 1)[-1] if self.words else ""

    @property
    def args(self) -> list[str]:
        return self.words[1:]

    def previous(self) -> Command | None:
        """The pipeline stage that feeds this one, if any."""
        index = next(i for i, c in enumerate(self.pipeline) if c is self)
        return self.pipeline[index - 1] if index else None


@dataclass
class Script:
    """Every simple command of a script, nested ones included, and the texts of every (nested) script."""

    commands: list[Command] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (via, text)
    codes: list[tuple[str, str, str]] = field(default_factory=list)  # (language, code, via) of `python -c` & co.
    output: str | None = None  # what the script prints, when its last command's output is known (`echo ...`)


# -- lexing -------------------------------------------------------------------------------------------------------


def matching(text: str, i: int, open_: str = "(", close: str = ")") -> int:
    """Index of the `close` that ends the group opened at `text[i]`, skipping quotes; len(text) when unterminated."""
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c in "'\"":
            k = j + 1
            while k < len(text) and text[k] != c:
                k += 2 if c == '"' and text[k] == "\\" else 1
            j = k + 1
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return len(text)


def lex(text: str) -> list[Token]:
    """Tokens of a bash script; here-document bodies are attached to their `<<` tokens."""
    tokens: list[Token] = []
    pending: list[tuple[Token, str, bool]] = []  # here-documents whose body starts at the next newline
    i = 0
    while i < len(text):
        c = text[i]
        if c in " \t\r":
            i += 1
        elif text.startswith("\\\n", i):
            i += 2
        elif c == "#" and (not tokens or tokens[-1].end < i):
            while i < len(text) and text[i] != "\n":
                i += 1
        elif c == "\n":
            tokens.append(Token("op", "\n", i, i + 1))
            i = _heredoc_bodies(text, i + 1, pending)
        elif fd := re.match(r"\d+(?=[<>])", text[i:]):
            i += len(fd.group())
        elif c in "<>" and text.startswith("(", i + 1):
            i = _word(text, i, tokens)
        elif op := next((r for r in REDIRECTS if text.startswith(r, i)), None):
            tokens.append(Token("redir", op, i, i + len(op)))
            i += len(op)
        elif op := next((o for o in OPERATORS if text.startswith(o, i)), None):
            tokens.append(Token("op", op, i, i + len(op)))
            i += len(op)
        else:
            i = _word(text, i, tokens)
            if len(tokens) > 1 and tokens[-2].kind == "redir" and tokens[-2].value in ("<<", "<<-"):
                pending.append((tokens[-2], tokens[-1].value, tokens[-2].value == "<<-"))
    _heredoc_bodies(text, len(text), pending)
    return tokens


def _heredoc_bodies(text: str, i: int, pending: list[tuple[Token, str, bool]]) -> int:
    for token, delimiter, strip_tabs in pending:
        lines = []
        while i < len(text):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            line = text[i:end]
            i = end + 1
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                break
            lines.append(line)
        token.body = "\n".join(lines) + "\n"
    pending.clear()
    return min(i, len(text))


def _word(text: str, i: int, tokens: list[Token]) -> int:
    start = i
    out: list[str] = []
    subs: list[str] = []
    while i < len(text):
        c = text[i]
        if c in " \t\r\n;&|()" or (c in "<>" and not text.startswith("(", i + 1)):
            break
        if c == "\\":
            out.append(text[i + 1 : i + 2] if text[i + 1 : i + 2] != "\n" else "")
            i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            end = len(text) if end < 0 else end
            out.append(text[i + 1 : end])
            i = end + 1
        elif text.startswith("$'", i):
            end = i + 2
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            out.append(unescape(text[i + 2 : end]))
            i = end + 1
        elif c == '"':
            i = _double_quoted(text, i + 1, out, subs)
        elif text.startswith("$((", i):
            end = matching(text, i + 1)
            out.append(text[i : end + 2])
            i = end + 2
        elif text.startswith(("$(", "<(", ">("), i):
            end = matching(text, i + 1)
            subs.append(text[i + 2 : end])
            out.append(text[i : end + 1])
            i = end + 1
        elif c == "`":
            end = text.find("`", i + 1)
            end = len(text) if end < 0 else end
            subs.append(text[i + 1 : end])
            out.append(text[i : end + 1])
            i = end + 1
        elif text.startswith("${", i):
            end = matching(text, i + 1, "{", "}")
            out.append(text[i : end + 1])
            i = end + 1
        else:
            out.append(c)
            i += 1
    tokens.append(Token("word", "".join(out), start, i, subs))
    return max(i, start + 1)


def _double_quoted(text: str, i: int, out: list[str], subs: list[str]) -> int:
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and text[i + 1 : i + 2] in ('"', "\\", "$", "`", "\n"):
            out.append(text[i + 1] if text[i + 1] != "\n" else "")
            i += 2
        elif text.startswith("$(", i) and not text.startswith("$((", i):
            end = matching(text, i + 1)
            subs.append(text[i + 2 : end])
            out.append(text[i : end + 1])
            i = end + 1
        elif text[i] == "`":
            end = text.find("`", i + 1)
            end = len(text) if end < 0 else end
            subs.append(text[i + 1 : end])
            out.append(text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return i + 1


def unescape(text: str) -> str:
    """`\\x6e`, `\\156`, `\\n`-style escapes decoded, as `$'...'`, `printf` and `echo -e` decode them."""
    try:
        return codecs.decode(
            re.sub(r"\\([0-7]{1,3})", lambda m: f"\\x{int(m.group(1), 8):02x}", text), "unicode_escape"
        )
    except (UnicodeDecodeError, ValueError):
        return text


# -- parsing ------------------------------------------------------------------------------------------------------


def parse(text: str, via: str = "", depth: int = 0) -> Script:
    """Every simple command of `text`, with the scripts nested in it, parsed to `MAX_DEPTH` levels."""
    script = Script(texts=[(via, text)])
    if depth > MAX_DEPTH:
        return script
    tokens = lex(text)
    pipeline: list[Command] = []
    current: list[Token] = []

    def close_command() -> None:
        if current:
            command = _command(text, current, script, via, depth)
            if command is not None:
                command.pipeline = pipeline
                pipeline.append(command)
            current.clear()

    def close_pipeline(background: bool = False) -> None:
        nonlocal pipeline
        close_command()
        for command in pipeline:
            command.background = background
        _follow_pipeline(pipeline, script, depth)
        if pipeline:
            script.output = output(pipeline[-1])
        pipeline = []

    for token in tokens:
        if token.kind != "op":
            current.append(token)
        elif token.value in ("|", "|&"):
            close_command()
        else:
            close_pipeline(background=token.value == "&")
    close_pipeline()
    return script


def _command(text: str, tokens: list[Token], script: Script, via: str, depth: int) -> Command | None:
    words: list[str] = []
    redirects: list[tuple[str, str]] = []
    stdin = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        for sub in token.subs:
            nested = parse(sub, "$(...)", depth + 1)
            _merge(script, nested)
            if token.value in (f"$({sub})", f"`{sub}`") and nested.output is not None:
                token.value = nested.output.strip()  # `$(echo bmFw | base64 -d)` is the word it prints
        if token.kind == "redir":
            target = tokens[i + 1].value if i + 1 < len(tokens) and tokens[i + 1].kind == "word" else ""
            redirects.append((token.value, target))
            if token.value == "<<<":
                stdin = target + "\n"
            elif token.body is not None:
                stdin = token.body
            i += 2
            continue
        words.append(token.value)
        i += 1
    source = text[tokens[0].start : tokens[-1].end]
    words, wrappers = unwrap(words)
    if not words and not redirects and not wrappers:
        return None
    command = Command(words, source, redirects, wrappers, via=via, stdin=stdin)
    _nested(command, script, depth)
    script.commands.append(command)
    return command


def unwrap(words: list[str]) -> tuple[list[str], list[str]]:
    """`words` without reserved words, assignments and wrappers; and the wrappers stripped, outermost first."""
    wrappers: list[str] = []
    while words:
        head = words[0].rsplit("/", 1)[-1]
        if words[0] in RESERVED:
            words = words[1:]
        elif words[0] in SKIPPED:
            return [], wrappers
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=.*", words[0], re.S):
            words = words[1:]
        elif head == "command" and words[1:2] in (["-v"], ["-V"]):
            return [], wrappers  # a lookup of the name, not a run
        elif head in WRAPPERS:
            wrappers.append(head)
            words = _skip_options(words[1:], WRAPPERS[head], head)
        else:
            break
    return words, wrappers


def _skip_options(words: list[str], takes_argument: str, wrapper: str) -> list[str]:
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            i += 1
            break
        if wrapper == "env" and "=" in word and not word.startswith("-"):
            i += 1
        elif word.startswith("-") and len(word) > 1:
            letters = word[1:] if not word.startswith("--") else ""
            i += 2 if letters and letters[-1] in takes_argument and len(letters) == 1 else 1
        else:
            break
    if wrapper == "timeout" and i < len(words):
        i += 1  # the duration
    return words[i:]


def _nested(command: Command, script: Script, depth: int) -> None:
    """Scripts a command runs from its own arguments: `sh -c`, `eval`, `su -c`, `python -c` and the like."""
    name, args = command.name, command.args
    if name in SHELLS or name in ("su", "runuser"):
        for i, word in enumerate(args[:-1]):
            if re.fullmatch(r"-[a-z]*c[a-z]*", word) or word == "--command":
                _merge(script, parse(args[i + 1], f"{name} -c", depth + 1))
                break
    elif name == "eval":
        _merge(script, parse(" ".join(args), "eval", depth + 1))
    elif name.rstrip("0123456789.") in INTERPRETERS or name in INTERPRETERS:
        flag = INTERPRETERS.get(name.rstrip("0123456789."), INTERPRETERS.get(name, "-c"))
        for i, word in enumerate(args[:-1]):
            if word in (flag, "-E", "--eval") or (flag == "-c" and re.fullmatch(r"-[A-Za-z]*c", word)):
                script.codes.append((name, args[i + 1], command.via or name))
                break
        else:
            if command.stdin and (not args or args[0] == "-"):
                script.codes.append((name, command.stdin, command.via or name))
    elif name == "find" and "-exec" in args:
        start = args.index("-exec") + 1
        end = next((j for j in range(start, len(args)) if args[j] in (";", "+")), len(args))
        _merge(script, parse(" ".join(_quote(w) for w in args[start:end]), "find -exec", depth + 1))


def _quote(word: str) -> str:
    return word if re.fullmatch(r"[\w@%+=:,./{}-]+", word) else "'" + word.replace("'", "'\\''") + "'"


def _merge(script: Script, nested: Script) -> None:
    script.commands.extend(nested.commands)
    script.texts.extend(nested.texts)
    script.codes.extend(nested.codes)


def _follow_pipeline(pipeline: list[Command], script: Script, depth: int) -> None:
    """Feed each stage the text it reads when that is known, and parse what a shell reads from a pipe or decoder."""
    for command in pipeline:
        previous = command.previous()
        if command.stdin is None and previous is not None:
            command.stdin = output(previous)
        if command.stdin is None:
            continue
        if command.name in SHELLS and not [a for a in command.args if a not in ("-", "-s", "-i", "-x", "-e")]:
            _merge(script, parse(command.stdin, f"| {command.name}", depth + 1))
        elif command.name.rstrip("0123456789.") in INTERPRETERS and (not command.args or command.args[0] == "-"):
            script.codes.append((command.name, command.stdin, f"| {command.name}"))
        elif command.name in DECODERS and (decoded := output(command)) is not None:
            _merge(script, parse(decoded, f"{command.name} decoded", depth + 1))


def output(command: Command) -> str | None:
    """What a command writes to standard output, for the few commands whose output is known from their words."""
    name, args = command.name, command.args
    if name == "echo":
        flags = list(itertools.takewhile(lambda a: re.fullmatch(r"-[neE]+", a) is not None, args))
        text = " ".join(args[len(flags) :])
        return (unescape(text) if any("e" in f for f in flags) else text) + "\n"
    if name == "printf" and args:
        return unescape(" ".join(args))
    if name == "cat" and not args:
        return command.stdin
    if command.stdin is None:
        return None
    return decode(command)


def decode(command: Command) -> str | None:
    """Standard output of a decoding stage (`base64 -d`, `xxd -r -p`, `rev`, `openssl base64 -d`) of its stdin."""
    name, args, data = command.name, command.args, command.stdin or ""
    flags = {a for a in args if a.startswith("-")}
    try:
        if name in ("base64", "base32") or (name == "openssl" and {"base64", "enc"} & set(args)):
            if not flags & {"-d", "--decode", "-D", "-di", "-id"}:
                return None
            compact = re.sub(r"\s", "", data)
            raw = (
                base64.b32decode(compact) if name == "base32" else base64.b64decode(compact + "=" * (-len(compact) % 4))
            )
            return raw.decode("utf-8", "replace")
        if name == "xxd" and "-r" in flags:
            return bytes.fromhex(re.sub(r"\s", "", data)).decode("utf-8", "replace")
        if name == "rev":
            return "\n".join(line[::-1] for line in data.split("\n"))
    except (binascii.Error, ValueError):
        return None
    return None


# -- what commands do to files ------------------------------------------------------------------------------------


@dataclass
class Write:
    """A file a call writes: through the editor, a redirection, `tee`, `cp`/`mv`/`install`, `sed -i` or `dd of=`.

    Attributes:
        path: the file as written in the call (`~` and `$HOME` kept).
        content: the text written, when the call shows it (editor text, `echo ... >`, here-documents); else None.
        how: "editor", ">", ">>", "tee", "cp", "sed -i", ...
        evidence: the part of the call that writes.
    """

    path: str
    content: str | None
    how: str
    evidence: str


def options(args: list[str], short: str = "", long: tuple[str, ...] = ()) -> tuple[list[tuple[str, str]], list[str]]:
    """Split `args` into `(option, value)` pairs and positionals; `short`/`long` name the options taking a value.

    >>> options(["-sSLo", "out", "--data=@f", "-X", "POST", "http://h"], short="oX", long=("--data",))
    ([('-s', ''), ('-S', ''), ('-L', ''), ('-o', 'out'), ('--data', '@f'), ('-X', 'POST')], ['http://h'])
    """
    found: list[tuple[str, str]] = []
    positionals: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            positionals.extend(args[i:])
            break
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if not eq and name in long and i < len(args):
                value, i = args[i], i + 1
            found.append((name, value))
        elif word.startswith("-") and len(word) > 1 and not word[1].isdigit():
            for j, letter in enumerate(word[1:], 1):
                if letter in short:
                    value = word[j + 1 :]
                    if not value and i < len(args):
                        value, i = args[i], i + 1
                    found.append((f"-{letter}", value))
                    break
                found.append((f"-{letter}", ""))
        else:
            positionals.append(word)
    return found, positionals


def writes(command: Command) -> list[Write]:
    """The files `command` writes (see `Write`)."""
    found = []
    for op, target in command.redirects:
        discarded = not target or re.fullmatch(r"&.*|\d+|/dev/(null|std(out|err)|fd/\d+|tty|tcp/.*|udp/.*)", target)
        if op in (">", ">>", ">|", "&>", "&>>", ">&") and not discarded:
            found.append(Write(target, output(command), op, command.text))
    name, args = command.name, command.args
    if name == "tee":
        found += [Write(path, command.stdin, "tee", command.text) for path in options(args)[1]]
    elif name in ("cp", "mv", "install", "ln", "rsync") and len(positionals := options(args, "tSmogT")[1]) >= 2:
        if ":" not in positionals[-1]:
            found.append(Write(positionals[-1], None, name, command.text))
    elif name == "sed" and any(a.startswith(("-i", "--in-place")) for a in args):
        opts, positionals = options(args, "ef", ("--expression", "--file"))
        script_given = any(o in ("-e", "-f", "--expression", "--file") for o, _ in opts)
        found += [Write(p, None, "sed -i", command.text) for p in positionals[0 if script_given else 1 :]]
    elif name == "dd":
        found += [Write(a[3:], None, "dd", command.text) for a in args if a.startswith("of=")]
    return found
