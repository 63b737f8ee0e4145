"""The `rock-gym` command."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

console = Console()

BACKENDS = click.Choice(["docker", "podman"])


@click.group()
@click.version_option(package_name="rock-gym")
def main() -> None:
    """rock_gym: container sandboxes as Gymnasium environments for LLM agents."""


@main.group()
def images() -> None:
    """Build and inspect sandbox images."""


@images.command("build")
@click.option("--backend", type=BACKENDS, multiple=True, default=["docker"], show_default=True)
@click.option("--engine-url", default=None, help="Engine API address (default: the backend's local socket).")
@click.option("--force", is_flag=True, help="Rebuild the root filesystem and re-import the image.")
def images_build(backend: tuple[str, ...], engine_url: str | None, force: bool) -> None:
    """Build rock-gym/base:bookworm offline with debootstrap and import it (no-op when present)."""
    from rock_gym.sandbox.images import build_base_image

    for name in backend:
        started = time.monotonic()
        report = _fail_clearly(lambda name=name: build_base_image(name, engine_url, force=force))
        if not report.imported:
            console.print(f"{report.image} already in {name}: nothing to do")
        else:
            how = "built and imported" if report.built_rootfs else "imported from the cached root filesystem"
            console.print(f"{report.image} {how} into {name} in {time.monotonic() - started:.1f}s")


@main.command()
@click.option("--backend", type=BACKENDS, multiple=True, default=["docker", "podman"], show_default=True)
@click.option("--all", "everything", is_flag=True, help="Remove every rock_gym container, not only orphans.")
def gc(backend: tuple[str, ...], everything: bool) -> None:
    """Remove rock_gym containers whose owner process is gone."""
    from rock_gym.sandbox.cleanup import collect_garbage
    from rock_gym.sandbox.config import SandboxConfig
    from rock_gym.sandbox.engines import Engine
    from rock_gym.sandbox.errors import EngineUnavailableError

    for name in backend:
        try:
            engine = Engine.connect(SandboxConfig(backend=name))  # type: ignore[arg-type]
        except EngineUnavailableError as exc:
            console.print(f"[yellow]skipped {name}[/]: {exc}")
            continue
        removed = collect_garbage(engine, everything=everything)
        console.print(f"{name}: removed {len(removed)} container(s)")


@main.command()
@click.option("--backend", type=BACKENDS, default="docker", show_default=True)
@click.option("--image", default=None, help="Image to run (default rock-gym/base:bookworm, built if missing).")
def demo(backend: str, image: str | None) -> None:
    """Start a sandbox, run a chunk of tool calls, and print the results and latency figures."""
    from rock_gym.sandbox import DEFAULT_IMAGE, Sandbox, SandboxConfig
    from rock_gym.sandbox.images import build_base_image

    if image is None:
        _fail_clearly(lambda: build_base_image(backend))
    config = SandboxConfig(image=image or DEFAULT_IMAGE, backend=backend)  # type: ignore[arg-type]
    with _fail_clearly(lambda: Sandbox(config).start()) as sb:
        console.print(f"sandbox ready in {sb.startup_seconds * 1000:.0f} ms ({backend}, {config.image})")
        chunk = [
            "cd /tmp && export GREETING=hello",
            "echo $GREETING from $(pwd); uname -sr",
            "python3 -c 'import sys; print(sys.version.split()[0])'",
            "printf 'def add(a, b):\\n    return a + b\\n' > calc.py",
            "python3 -c 'import calc; print(calc.add(2, 3))'",
            "ls /nonexistent",
            "sleep 5",
        ]
        results = sb.run_many(chunk, timeout=[10, 10, 10, 10, 10, 10, 1])
        table = Table(title="one chunk of tool calls")
        for column in ("command", "exit", "output", "ms"):
            table.add_column(column)
        for r in results:
            exit_text = "timeout" if r.timed_out else str(r.exit_code)
            table.add_row(r.command, exit_text, r.output.strip()[:60], f"{r.duration * 1000:.1f}")
        console.print(table)
        trips = [sb.run("true").duration * 1000 for _ in range(200)]
        console.print(
            f"round trip of `true`: median {statistics.median(trips):.2f} ms, "
            f"p90 {statistics.quantiles(trips, n=10)[-1]:.2f} ms over {len(trips)} calls"
        )


@main.command("plugins")
def plugins_command() -> None:
    """List learners, task sources, tool formats and policies, the plugin that gave each, and failed plugins."""
    import warnings

    from rock_gym.plugins import KINDS, PluginError, get_plugin_manager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failures are shown in their own table below
        pm = get_plugin_manager()
    table = Table(title="rock_gym plugins")
    for column in ("kind", "name", "plugin", "description"):
        table.add_column(column)
    for kind in KINDS:
        try:
            entries = list(pm.registry(kind))
        except PluginError as exc:
            console.print(f"[red]error:[/] {exc}")
            sys.exit(1)
        for entry in entries:
            plugin = " ".join(filter(None, [entry.plugin, pm.distributions.get(entry.plugin, "")]))
            table.add_row(entry.kind, entry.name, plugin, entry.description)
    console.print(table)
    if pm.failures:
        failed = Table(title="plugins that failed to load")
        for column in ("entry point", "value", "error"):
            failed.add_column(column)
        for failure in pm.failures:
            error = f"{type(failure.error).__name__}: {failure.error}"
            failed.add_row(failure.entry_point.name, failure.entry_point.value, error)
        console.print(failed)


@main.command("eval")
@click.option("--env", "env_id", default="rock/Terminal-v0", show_default=True, help="Gymnasium id of the env.")
@click.option("--tasks", default=None, help="Tasks: a JSONL file or Harbor task dir(s) (default: the env's own).")
@click.option("--policy", required=True, help="hf:PATH, vllm:PATH, openai:URL or expert.")
@click.option("--model", default=None, help="Model name to ask an openai: server for (default: its first).")
@click.option("--episodes", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--num-envs", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--backend", type=BACKENDS, default="docker", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--max-turns", default=None, type=click.IntRange(min=1), help="Turn limit (default: the env's).")
@click.option("--max-new-tokens", default=512, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=1.0, show_default=True, type=float)
@click.option("--tool-format", default="hermes", show_default=True, help="hermes, qwen3_coder or openai.")
@click.option("--max-context-tokens", default=None, type=click.IntRange(min=1), help="Token budget per request.")
@click.option("--context", default="keep", show_default=True, help="Context policy: keep, elide, drop, summary, ...")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the report here.")
def eval_command(
    env_id: str,
    tasks: str | None,
    policy: str,
    model: str | None,
    episodes: int,
    num_envs: int,
    backend: str,
    seed: int,
    max_turns: int | None,
    max_new_tokens: int,
    temperature: float,
    tool_format: str,
    max_context_tokens: int | None,
    context: str,
    json_path: str | None,
) -> None:
    """Evaluate a policy: success rate with a 95% interval, a per-task table, and a JSON report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from learners.config import EnvConfig
    from learners.evaluate import evaluate, report_tables
    from rock_gym.agent.harness import HarnessConfig

    env = EnvConfig(env_id, tasks, backend, num_envs=num_envs, tool_format=tool_format)
    if max_turns is not None:
        env.max_turns = max_turns
    observation_role = "user" if policy.startswith("openai:") else "tool"
    harness = HarnessConfig(max_context_tokens, context, max_new_tokens, observation_role)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        progress = bar.add_task(f"{env_id} · {policy}", total=episodes)
        report = _fail_clearly(
            lambda: evaluate(
                env,
                policy,
                episodes,
                seed=seed,
                model=model,
                temperature=temperature,
                harness=harness,
                on_trajectory=lambda _: bar.advance(progress),
            )
        )
    for table in report_tables(report):
        console.print(table)
    if json_path:
        report.write_json(json_path)
        console.print(f"report written to {json_path}")


@main.command("train")
@click.option("--learner", "learner_name", default=None, help="A registered learner: ipa, reinforce, sft, a plugin's.")
@click.option("--env", "env_id", default=None, help="Gymnasium id of the env (default: the learner's).")
@click.option("--policy", default=None, help="The model to train: hf:PATH.")
@click.option("--tasks", default=None, help="Tasks: a JSONL file or Harbor task dir(s) (default: the env's own).")
@click.option("--backend", type=BACKENDS, default=None, help="Container engine (default: docker).")
@click.option("--num-envs", default=None, type=click.IntRange(min=1), help="Envs played side by side.")
@click.option("--updates", default=10, show_default=True, type=click.IntRange(min=0), help="Updates to run now.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="The run's folder.")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False), help="A run's config.toml.")
@click.option("--resume", "resume_dir", default=None, type=click.Path(file_okay=False), help="Continue this run.")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="Set a config field (TOML value).")
@click.option("--checkpoint-every", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--ray-address",
    default=None,
    metavar="auto|HOST:PORT",
    help="Train on this Ray cluster (learners with a distributed mode, e.g. ipa; workers via --set).",
)
def train_command(
    learner_name: str | None,
    env_id: str | None,
    policy: str | None,
    tasks: str | None,
    backend: str | None,
    num_envs: int | None,
    updates: int,
    out_dir: str | None,
    config_path: str | None,
    resume_dir: str | None,
    overrides: tuple[str, ...],
    checkpoint_every: int,
    ray_address: str | None,
) -> None:
    """Train a registered learner; the run's folder keeps its config, metrics (JSON lines), checkpoints and plots.

    \b
    rock-gym train --learner ipa --env rock/Terminal-v0 --policy hf:PATH --out runs/ipa1
    rock-gym train --learner ipa --config runs/ipa1/config.toml --resume runs/ipa1
    rock-gym train --learner ipa --policy hf:PATH --out runs/ipa2 --ray-address auto \\
        --set rollout_workers=8 --set learner_workers=2 --set 'rollout_resources=["node_a", "node_b"]'
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from learners.run import Run, read_config

    flags = {"env_id": env_id, "policy": policy, "tasks": tasks, "backend": backend, "num_envs": num_envs}
    settings = {k: v for k, v in flags.items() if v is not None} | _parse_overrides(overrides)
    if ray_address is not None:
        settings["ray_address"] = ray_address
    if resume_dir:
        if ray_address is not None:  # the cluster's address may have changed since the run began
            config_path = _with_ray_address(Path(config_path or Path(resume_dir) / "config.toml"), ray_address)
        run = _fail_clearly(lambda: Run.resume(resume_dir, config_path, checkpoint_every))
    else:
        if config_path:
            name, from_file = read_config(Path(config_path))
            learner_name, settings = learner_name or name, from_file | settings
        if not learner_name or not out_dir:
            raise click.UsageError("give --learner and --out (or --resume DIR)")
        if ray_address is not None:
            _require_ray_field(learner_name)
        run = _fail_clearly(lambda: Run.start(learner_name, out_dir, settings, checkpoint_every))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, TextColumn("{task.fields[figures]}"), console=console) as bar:
            progress = bar.add_task(f"{run.name} · {run.folder}", total=updates, figures="")
            run.train(updates, on_update=lambda m: bar.update(progress, advance=1, figures=_figures(m)))
    finally:
        run.close()
    console.print(f"{run.updates_done} updates in {run.folder}: metrics.jsonl, checkpoints/, metrics.png")


def _require_ray_field(learner_name: str) -> None:
    """Refuse --ray-address for a learner whose config has no ``ray_address`` (no distributed mode)."""
    import dataclasses

    from rock_gym.plugins import get_plugin_manager

    try:
        config_class = getattr(get_plugin_manager().learners.load(learner_name), "config_class", None)
    except Exception:  # noqa: BLE001 - an unknown learner is reported by Run.start, with the known names
        return
    if config_class is not None and "ray_address" not in {f.name for f in dataclasses.fields(config_class)}:
        raise click.UsageError(f"--ray-address: learner {learner_name!r} has no distributed mode (ipa has)")


def _with_ray_address(config: Path, ray_address: str) -> str:
    """A copy of a run's config.toml with ``ray_address`` set, for a resume on another cluster address."""
    import tempfile
    import tomllib

    import tomli_w

    document = tomllib.loads(config.read_text())
    document.setdefault("config", {})["ray_address"] = ray_address
    document["none"] = [name for name in document.get("none", []) if name != "ray_address"]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="rock-gym-resume-", delete=False) as out:
        out.write(tomli_w.dumps(document))
    return out.name


def _parse_overrides(overrides: tuple[str, ...]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs, each value read as TOML (a bare word is a string)."""
    import tomllib

    settings: dict[str, Any] = {}
    for item in overrides:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise click.BadParameter(f"{item!r}: use FIELD=VALUE", param_hint="--set")
        try:
            settings[field.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            settings[field.strip()] = value
    return settings


def _figures(metrics: dict[str, float]) -> str:
    shown = ("success_rate", "loss", "grad_norm")
    return "  ".join(f"{k} {metrics[k]:.3g}" for k in shown if isinstance(metrics.get(k), (int, float)))


@main.group()
def tasks() -> None:
    """Synthesize bug-fix tasks from real projects, validate them, list them."""


@tasks.command("synth")
@click.option("--project", required=True, help="NAME or NAME==VERSION of a project in the spec file.")
@click.option("--max-tasks", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--spec-file", default=None, type=click.Path(dir_okay=False), help="Spec file (default: shipped).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--max-fail-to-pass", default=None, type=click.IntRange(min=1), help="Cap on |FAIL_TO_PASS|.")
@click.option("--per-function", default=0, show_default=True, type=click.IntRange(min=0), help="0: no limit.")
@click.option("--backend", type=BACKENDS, default="docker", show_default=True)
def tasks_synth(
    project: str,
    max_tasks: int,
    out_dir: str,
    spec_file: str | None,
    workers: int,
    seed: int,
    max_fail_to_pass: int | None,
    per_function: int,
    backend: str,
) -> None:
    """Inject bugs into a project, keep the verified ones as tasks (OUT/tasks.jsonl, OUT/summary.json)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rock_gym.tasks.synth import spec_for
    from rock_gym.tasks.synth.pipeline import DEFAULT_MAX_FAIL_TO_PASS, synth

    spec = _fail_clearly(lambda: spec_for(project, spec_file))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        accepted = bar.add_task(f"{spec.requirement}: accepted (0 tried)", total=max_tasks)
        report = _fail_clearly(
            lambda: synth(
                spec,
                max_tasks,
                out_dir,
                backend=backend,
                workers=workers,
                seed=seed,
                max_fail_to_pass=max_fail_to_pass or DEFAULT_MAX_FAIL_TO_PASS,
                max_per_function=per_function or None,
                progress=lambda p: bar.update(
                    accepted, completed=p.accepted, description=f"{spec.requirement}: accepted ({p.tried} tried)"
                ),
            )
        )
    summary = report.to_json()
    table = Table(title=f"{summary['project']}: {summary['accepted']} tasks from {summary['candidates_tried']} tried")
    table.add_column("verdict")
    table.add_column("candidates", justify="right")
    for reason, count in summary["reasons"].items():
        table.add_row(reason, str(count))
    console.print(table)
    console.print(
        f"{summary['candidates_available']} candidates in {summary['covered_functions']} covered functions; "
        f"{summary['suite_runs']} suite runs ({summary['timed_out_runs']} timed out); {summary['seconds']:.0f}s; "
        f"{summary['tasks_per_minute']:.1f} validated tasks/min; written to {out_dir}"
    )


@tasks.command("validate")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--backend", type=BACKENDS, default="docker", show_default=True)
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Default: DIR/validation.json")
def tasks_validate(directory: str, workers: int, backend: str, json_path: str | None) -> None:
    """Re-run every task's checks in real containers: gold passes, no-op fails, expert trajectory resolves."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rock_gym.tasks import load
    from rock_gym.tasks.synth.validate import VALIDATION_FILE, validate

    loaded = _fail_clearly(lambda: load(directory))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        progress = bar.add_task(f"validating {directory}", total=len(loaded))
        report = _fail_clearly(
            lambda: validate(loaded, backend=backend, workers=workers, progress=lambda _: bar.advance(progress))
        )
    summary = report.to_json()
    table = Table(title=f"{directory}: {summary['passed']}/{summary['tasks']} tasks pass every check")
    for column in ("check", "failed"):
        table.add_column(column)
    for check in ("gold_fails", "noop_resolves", "expert_fails"):
        table.add_row(check, str(summary[check]))
    console.print(table)
    for check in report.failed:
        console.print(f"[red]{check.instance_id}[/]: {check.errors}")
    path = json_path or str(Path(directory) / VALIDATION_FILE)
    report.write(path)
    rate = summary["validated_tasks_per_minute"]
    console.print(f"{summary['seconds']:.0f}s, {rate:.1f} validated tasks/min; written to {path}")
    if report.failed:
        sys.exit(1)


@tasks.command("list")
@click.argument("directory", type=click.Path(exists=True))
def tasks_list(directory: str) -> None:
    """A table of the tasks in DIR (a tasks.jsonl directory, a JSONL file or Harbor dirs)."""
    from rock_gym.tasks import SWETask, load

    loaded = _fail_clearly(lambda: load(directory))
    table = Table(title=f"{len(loaded)} tasks in {directory}")
    for column in ("id", "project", "function", "operator", "F2P", "P2P"):
        table.add_column(column, justify="right" if column in ("F2P", "P2P") else "left")
    for task in loaded:
        if isinstance(task, SWETask):
            extra = task.extra
            project = str(extra.get("project", task.repo))
            row = [str(extra.get("function", "")), str(extra.get("operator", ""))]
            table.add_row(task.instance_id, project, *row, str(len(task.FAIL_TO_PASS)), str(len(task.PASS_TO_PASS)))
        else:
            table.add_row(task.task_id, "", "", "", "", "")
    console.print(table)


def _fail_clearly(action):  # type: ignore[no-untyped-def]
    """Run `action`; turn the sandbox layer's and the task layer's errors into a one-line message and exit status 1."""
    from rock_gym.sandbox.errors import SandboxError
    from rock_gym.tasks.model import TaskError
    from rock_gym.tasks.synth.build import BuildError
    from rock_gym.tasks.synth.coverage import CoverageError
    from rock_gym.tasks.synth.pipeline import SynthError

    try:
        return action()
    except (SandboxError, TaskError, BuildError, CoverageError, SynthError) as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
