"""The offline base image: Debian minbase built with debootstrap from Debian's packages, imported into an engine.

No image registry is needed: the root filesystem is built on the host, cached as a tar file, and imported through the
engine API (so it also works for a remote engine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rock_gym.sandbox.config import DEFAULT_IMAGE, SandboxConfig
from rock_gym.sandbox.engines import Engine
from rock_gym.sandbox.errors import SandboxError

BASE_PACKAGES = ("bash", "coreutils", "procps", "python3", "python3-pytest", "git")
IMAGE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["bash"]',
]
#: Parts of the root filesystem no sandbox needs: package caches, docs, manuals, translations.
PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)


@dataclass(frozen=True)
class BuildReport:
    image: str
    backend: str
    built_rootfs: bool
    imported: bool


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rock_gym" / "images"


def rootfs_tarball(suite: str = "bookworm", mirror: str | None = None, rebuild: bool = False) -> tuple[Path, bool]:
    """The cached root filesystem tar of a Debian suite, built with debootstrap when missing.

    Returns the path and whether it was built now.
    """
    target = cache_dir() / f"{suite}-minbase.tar"
    if target.exists() and not rebuild:
        return target, False
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed: run `apt-get install -y debootstrap` (as root)")
    if os.geteuid() != 0:
        raise SandboxError("debootstrap needs root: run `sudo rock-gym images build`")
    mirror = mirror or os.environ.get("ROCK_GYM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rock-gym-rootfs-") as tmp:
        root = Path(tmp) / "root"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", suite, str(root), mirror]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SandboxError(
                f"debootstrap failed ({done.returncode}); its last lines:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        for part in PRUNE:
            shutil.rmtree(root / part, ignore_errors=True)
        partial = target.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.replace(target)
    return target, True


def import_rootfs(engine: Engine, tarball: Path, image: str) -> None:
    """Import a root filesystem tar into the engine as `image` (repository:tag)."""
    repository, _, tag = image.rpartition(":")
    with tarball.open("rb") as data:
        answer = engine.api.import_image_from_data(data, repository=repository, tag=tag, changes=IMAGE_CHANGES)
    image_id = _imported_id(answer)
    # Podman's compatible API ignores repository/tag on import: tag explicitly.
    if image_id and not engine.has_image(image):
        engine.api.tag(image_id, repository, tag)
    if not engine.has_image(image):
        raise SandboxError(f"importing {tarball} into {engine.backend} did not produce {image}: {answer}")


def _imported_id(answer: object) -> str | None:
    text = answer if isinstance(answer, str) else str(answer)
    at = text.find("sha256:")
    return text[at : at + 71] if at >= 0 else None


def build_base_image(
    backend: str = "docker", engine_url: str | None = None, image: str = DEFAULT_IMAGE, force: bool = False
) -> BuildReport:
    """Make sure `image` exists in the engine; build and import it when missing (or when `force`)."""
    engine = Engine.connect(SandboxConfig(backend=backend, engine_url=engine_url))  # type: ignore[arg-type]
    if engine.has_image(image) and not force:
        return BuildReport(image, backend, built_rootfs=False, imported=False)
    suite = image.rpartition(":")[2] or "bookworm"
    tarball, built = rootfs_tarball(suite, rebuild=force)
    import_rootfs(engine, tarball, image)
    return BuildReport(image, backend, built_rootfs=built, imported=True)
