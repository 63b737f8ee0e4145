"""Procedural terminal-task families (file and text work) and their registry.

Every family hides what the agent needs to act in a file the instruction points at, so a policy has to look
before it can act. Images need bash, coreutils and python3 (no network, no jq): `rock-gym/base:bookworm`.

Examples:
    >>> [task.task_id for task in terminal_tasks(["count-matches"], seeds=range(2))]
    ['count-matches-0', 'count-matches-1']
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from rock_gym.tasks.family import TaskFamily, Variant
from rock_gym.tasks.model import TerminalTask

WORDS = (
    "amber",
    "basalt",
    "cedar",
    "delta",
    "ember",
    "falcon",
    "garnet",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lumen",
    "maple",
    "nickel",
    "onyx",
    "pepper",
    "quartz",
    "raven",
    "saffron",
    "tundra",
    "umber",
    "violet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
    "acorn",
    "birch",
    "cobalt",
    "dune",
    "fern",
    "glacier",
    "heron",
    "iris",
    "jade",
    "kelp",
    "lotus",
    "meadow",
    "nova",
    "orchid",
)
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


def _words(rng: random.Random, count: int) -> list[str]:
    return rng.sample(WORDS, count)


def _sentence(rng: random.Random, length: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(length))


# -- find files by content ---------------------------------------------------------------------------------------


def _find_files(rng: random.Random) -> Variant:
    codes = [f"E{code}" for code in rng.sample(range(1000, 10000), 4)]
    target, decoys = codes[0], codes[1:]
    dirs = _words(rng, 3)
    files, expected = {}, []
    for index in range(rng.randint(10, 16)):
        path = f"/data/files/{rng.choice(dirs)}/{rng.choice(WORDS)}_{index}.log"
        body = [_sentence(rng) for _ in range(rng.randint(3, 8))]
        mention = target if index < 3 or rng.random() < 0.2 else rng.choice([None, *decoys])
        if mention:
            body.insert(rng.randrange(len(body) + 1), f"job failed with {mention} after retry")
            expected += [path] if mention == target else []
        files[path] = "\n".join(body) + "\n"
    files["/data/README.txt"] = (
        f"Incident notes\n\nThe error code under investigation is {target}.\n"
        f"Codes {', '.join(decoys)} are known issues and can be ignored.\n"
    )
    return Variant(
        instruction="Find every file under /data/files whose content mentions the error code under investigation "
        "(named in /data/README.txt). Write their absolute paths to /output/matches.txt, one per line, sorted.",
        files=files,
        look=["cat /data/README.txt"],
        act=[f"mkdir -p /output && grep -rlw {target} /data/files | LC_ALL=C sort > /output/matches.txt"],
        check=f"""
            if lines("/output/matches.txt") != {sorted(expected)!r}:
                fail("wrong file list")
        """,
    )


# -- sed edits of config files -----------------------------------------------------------------------------------


def _config_edit(rng: random.Random) -> Variant:
    old, new = (f"db-{tag}-{rng.randint(10, 99)}.internal" for tag in ("old", "new"))
    names = [f"svc_{word}.conf" for word in _words(rng, rng.randint(3, 5))]
    key, value = rng.choice(["timeout", "retries", "pool_size"]), str(rng.randint(100, 999))
    target = rng.choice(names)
    files, expected = {}, {}
    for name in names:
        entries = [("name", name[4:-5]), ("timeout", str(rng.randint(1, 60))), ("retries", str(rng.randint(1, 9)))]
        entries += [("pool_size", str(rng.randint(1, 50))), ("host", rng.choice([old, "cache-1.internal"]))]
        entries += [("url", f"postgres://{old}:5432/{name[4:-5]}"), ("log_level", rng.choice(LEVELS).lower())]
        rng.shuffle(entries)
        before = "".join(f"{k} = {v}\n" for k, v in entries)
        after = "".join(
            f"{k} = {value if (k == key and name == target) else v.replace(old, new)}\n" for k, v in entries
        )
        files[f"/data/conf/{name}"], expected[f"/data/conf/{name}"] = before, after
    files["/data/CHANGE_REQUEST.txt"] = (
        f"Change request\n\n1. The database moved: replace the host {old} with {new} everywhere in /data/conf.\n"
        f"2. In {target} only, set {key} to {value}.\nLeave every other line as it is.\n"
    )
    return Variant(
        instruction="Apply the change request in /data/CHANGE_REQUEST.txt to the files under /data/conf, "
        "editing them in place and changing nothing else.",
        files=files,
        look=["cat /data/CHANGE_REQUEST.txt", "head -n 20 /data/conf/*.conf"],
        act=[
            f"sed -i 's/{old.replace('.', '[.]')}/{new}/g' /data/conf/*.conf",
            f"sed -i 's/^{key} = .*/{key} = {value}/' /data/conf/{target}",
        ],
        check=f"""
            for path, text in {expected!r}.items():
                if read(path) != text:
                    fail(f"{{path}} is not as requested")
        """,
    )


# -- counting ----------------------------------------------------------------------------------------------------


def _log_line(rng: random.Random, level: str, service: str) -> str:
    stamp = f"2024-0{rng.randint(1, 9)}-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:00"
    return f"{stamp} {level} service={service} user={rng.choice(WORDS)} {_sentence(rng, 4)}"


def _count_matches(rng: random.Random) -> Variant:
    services = _words(rng, 4)
    level, service = rng.choice(LEVELS[1:]), services[0]
    files, count = {}, 0
    for index in range(rng.randint(2, 4)):
        rows = [_log_line(rng, rng.choice(LEVELS), rng.choice(services)) for _ in range(rng.randint(20, 50))]
        rows.append(_log_line(rng, level, service))
        count += sum(f" {level} service={service} " in row for row in rows)
        files[f"/data/logs/app-{index}.log"] = "\n".join(rows) + "\n"
    files["/data/question.txt"] = (
        f"How many lines across /data/logs/*.log have level {level} and come from service {service}?\n"
    )
    return Variant(
        instruction="Answer the question in /data/question.txt: write just the number to /output/count.txt.",
        files=files,
        look=["cat /data/question.txt", "head -n 3 /data/logs/app-0.log"],
        act=[f"mkdir -p /output && cat /data/logs/*.log | grep -c ' {level} service={service} ' > /output/count.txt"],
        check=f"""
            answer = read("/output/count.txt").strip()
            if answer != "{count}":
                fail(f"expected {count}, got {{answer!r}}")
        """,
    )


# -- log analysis with awk ---------------------------------------------------------------------------------------


def _access_line(rng: random.Random, ip: str, status: int) -> str:
    path = "/" + "/".join(_words(rng, rng.randint(1, 3)))
    stamp = f"{rng.randint(10, 28)}/Mar/2024:{rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)} +0000"
    return f'{ip} - - [{stamp}] "{rng.choice(["GET", "POST"])} {path} HTTP/1.1" {status} {rng.randint(100, 9000)}'


def _log_report(rng: random.Random) -> Variant:
    status, top = rng.choice([403, 404, 500, 503]), rng.randint(2, 4)
    ips = [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{n}" for n in rng.sample(range(1, 255), 8)]
    counts = dict(zip(ips, rng.sample(range(1, 15), len(ips)), strict=True))  # distinct counts: no ties
    rows = [_access_line(rng, ip, status) for ip, n in counts.items() for _ in range(n)]
    rows += [_access_line(rng, rng.choice(ips), rng.choice([200, 201, 301, 302])) for _ in range(60)]
    rng.shuffle(rows)
    ranked = Counter(counts).most_common(top)
    expected = [f"{ip} {n}" for ip, n in ranked]
    return Variant(
        instruction="Produce the report described in /data/report_spec.txt from the web server log /data/access.log.",
        files={
            "/data/access.log": "\n".join(rows) + "\n",
            "/data/report_spec.txt": f"Report the {top} client IPs that made the most requests answered with "
            f"status {status}.\nWrite /output/report.txt with one line per IP, `<ip> <count>`, most requests first.\n",
        },
        look=["cat /data/report_spec.txt", "head -n 3 /data/access.log"],
        act=[
            f"mkdir -p /output && awk '$9 == {status} {{print $1}}' /data/access.log | sort | uniq -c | sort -rn "
            f"| head -n {top} | awk '{{print $2, $1}}' > /output/report.txt"
        ],
        check=f"""
            got = [" ".join(line.split()) for line in lines("/output/report.txt")]
            if got != {expected!r}:
                fail(f"wrong report: {{got}}")
        """,
    )


# -- JSON transform ----------------------------------------------------------------------------------------------


def _json_filter(rng: random.Random) -> Variant:
    teams = _words(rng, 3)
    size = rng.randint(12, 24)
    levels, scores = rng.sample(range(1, 99), size), rng.sample(range(100, 999), size)  # distinct: no sort ties
    records: list[dict[str, Any]] = [
        {"id": 100 + i, "name": rng.choice(WORDS), "team": rng.choice(teams), "level": levels[i], "score": scores[i]}
        for i in range(size)
    ]
    team = teams[0]
    keep = sorted(rng.sample(["id", "name", "level", "score"], 2))
    sort_key, descending = rng.choice(["level", "score"]), rng.random() < 0.5
    chosen = sorted((r for r in records if r["team"] == team), key=lambda r: r[sort_key], reverse=descending)
    expected = [{k: r[k] for k in keep} for r in chosen]
    order = "descending" if descending else "ascending"
    script = (
        "import json; rows = json.load(open('/data/records.json')); "
        f"rows = sorted((r for r in rows if r['team'] == {team!r}), key=lambda r: r[{sort_key!r}], "
        f"reverse={descending}); json.dump([{{k: r[k] for k in {keep!r}}} for r in rows], "
        "open('/output/result.json', 'w'), indent=2)"
    )
    return Variant(
        instruction="Transform /data/records.json as /data/spec.txt says.",
        files={
            "/data/records.json": json.dumps(records, indent=2) + "\n",
            "/data/spec.txt": f"Select the records whose team is {team!r}. Keep only the fields {keep[0]!r} and "
            f"{keep[1]!r}, order them by {sort_key!r} {order}, and write them as a JSON list to /output/result.json.\n",
        },
        look=["cat /data/spec.txt", "head -n 10 /data/records.json"],
        act=[f'mkdir -p /output && python3 -c "{script}"'],
        check=f"""
            try:
                got = json.loads(read("/output/result.json"))
            except ValueError as exc:
                fail(f"not JSON: {{exc}}")
            if got != {expected!r}:
                fail("wrong records")
        """,
    )


# -- CSV transform -----------------------------------------------------------------------------------------------


def _csv_groupby(rng: random.Random) -> Variant:
    columns = ["region", "product", "rep", "units", "price_cents"]
    rng.shuffle(columns)
    values = {"region": _words(rng, 4), "product": _words(rng, 5), "rep": _words(rng, 4)}
    rows = []
    for _ in range(rng.randint(15, 30)):
        row = {name: rng.choice(pool) for name, pool in values.items()}
        row.update(units=str(rng.randint(1, 40)), price_cents=str(rng.randint(99, 9999)))
        rows.append(row)
    group, value = rng.choice(list(values)), rng.choice(["units", "price_cents"])
    totals: Counter[str] = Counter()
    for row in rows:
        totals[row[group]] += int(row[value])
    expected = [[group, "total"], *([key, str(totals[key])] for key in sorted(totals))]
    g, v = columns.index(group) + 1, columns.index(value) + 1
    return Variant(
        instruction="Summarise /data/sales.csv as /data/spec.txt asks.",
        files={
            "/data/sales.csv": "\n".join([",".join(columns), *(",".join(r[c] for c in columns) for r in rows)]) + "\n",
            "/data/spec.txt": f"Sum the column `{value}` for each distinct value of the column `{group}`. Write "
            f"/output/summary.csv with the header `{group},total` and one row per {group}, sorted by {group}.\n",
        },
        look=["cat /data/spec.txt", "head -n 3 /data/sales.csv"],
        act=[
            f"mkdir -p /output && {{ echo {group},total; awk -F, 'NR > 1 {{s[${g}] += ${v}}} "
            f'END {{for (k in s) print k "," s[k]}}\' /data/sales.csv | LC_ALL=C sort; }} > /output/summary.csv'
        ],
        check=f"""
            got = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(read("/output/summary.csv")))]
            if [row for row in got if row] != {expected!r}:
                fail("wrong summary")
        """,
    )


# -- a small script to write -------------------------------------------------------------------------------------

#: (spec sentence, reference body, function computing the expected output of one input file)
_SCRIPT_KINDS = {
    "count": ("prints how many lines of that file contain the text `{token}`", "grep -cF -- '{token}' \"$1\" || true"),
    "sum": (
        "prints the sum of the numbers in column {column} (columns are separated by spaces)",
        "awk '{{s += ${column}}} END {{print s + 0}}' \"$1\"",
    ),
    "first": (
        "prints, sorted and without duplicates, the first word of every line that contains `{token}`",
        "grep -F -- '{token}' \"$1\" | awk '{{print $1}}' | LC_ALL=C sort -u",
    ),
}


def _script_input(rng: random.Random, token: str) -> str:
    rows = []
    for _ in range(rng.randint(5, 12)):
        # Columns 2 and 3 are always numbers; the token, when present, comes last.
        words = [rng.choice(WORDS), str(rng.randint(0, 99)), str(rng.randint(0, 99)), rng.choice(WORDS)]
        if rng.random() < 0.4:
            words.append(token)
        rows.append(" ".join(words))
    return "\n".join(rows) + "\n"


def _script_output(kind: str, text: str, token: str, column: int) -> str:
    rows = text.splitlines()
    if kind == "count":
        return str(sum(token in row for row in rows))
    if kind == "sum":
        return str(sum(int(row.split()[column - 1]) for row in rows))
    return "\n".join(sorted({row.split()[0] for row in rows if token in row}))


def _write_script(rng: random.Random) -> Variant:
    kind, name = rng.choice(sorted(_SCRIPT_KINDS)), f"{rng.choice(WORDS)}_tool"
    token, column = f"tag-{rng.choice(WORDS)}", rng.choice([2, 3])
    spec, body = (part.format(token=token, column=column) for part in _SCRIPT_KINDS[kind])
    cases = [_script_input(rng, token) for _ in range(3)]
    expected = [(case, _script_output(kind, case, token, column)) for case in cases]
    script_path = f"/output/{name}.sh"
    return Variant(
        instruction="Write the command-line tool that /data/spec.txt describes.",
        files={
            "/data/spec.txt": f"Write an executable bash script {script_path}. It takes one argument, the path of a "
            f"text file, and {spec}.\n",
            "/data/example.txt": cases[0],
        },
        look=["cat /data/spec.txt", "cat /data/example.txt"],
        act=[
            f"mkdir -p /output && printf '%s\\n' '#!/bin/bash' {_shell_quote(body)} > {script_path}",
            f"chmod +x {script_path} && {script_path} /data/example.txt",
        ],
        check=f"""
            if not os.access({script_path!r}, os.X_OK):
                fail("{script_path} is missing or not executable")
            for index, (text, want) in enumerate({expected!r}):
                path = f"/tmp/rock_gym_case_{{index}}.txt"
                with open(path, "w") as handle:
                    handle.write(text)
                run = subprocess.run([{script_path!r}, path], capture_output=True, text=True, timeout=20)
                if run.stdout.strip() != want:
                    fail(f"case {{index}}: expected {{want!r}}, got {{run.stdout.strip()!r}}")
        """,
        metadata={"script_kind": kind},
    )


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# -- registry ----------------------------------------------------------------------------------------------------

FAMILIES: dict[str, TaskFamily] = {}


def register_family(family: TaskFamily) -> TaskFamily:
    """Add a family to the registry (names are unique)."""
    if family.name in FAMILIES:
        raise ValueError(f"a task family named {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> TaskFamily:
    """The registered family called `name`."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"no task family {name!r}; registered: {', '.join(sorted(FAMILIES))}") from None


def terminal_tasks(families: Iterable[str] | None = None, seeds: Iterable[int] = range(10)) -> list[TerminalTask]:
    """Tasks of the named families (all when None) for each seed, family by family."""
    names = list(FAMILIES) if families is None else list(families)
    seed_list = list(seeds)
    return [get_family(name).generate(seed) for name in names for seed in seed_list]


for _family in (
    TaskFamily("find-files", "list the files that mention the error code named in a README", _find_files),
    TaskFamily("config-edit", "apply a change request to config files with sed", _config_edit),
    TaskFamily("count-matches", "count log lines with the level and service a question names", _count_matches),
    TaskFamily("log-report", "top client IPs for the status a spec names, from an access log", _log_report),
    TaskFamily("json-filter", "filter, project and sort JSON records as a spec says", _json_filter),
    TaskFamily("csv-groupby", "group-by sum over the CSV columns a spec names", _csv_groupby),
    TaskFamily("write-script", "write the small command-line tool a spec describes", _write_script),
):
    register_family(_family)
