"""Build each repository task's ``repo.bundle`` from its library's sdist and ``base.patch``.

A task's ``task.yaml`` names the release it was made from (``upstream:``: name, version,
license, the sdist's sha256). This script gets that sdist from PyPI with
``pip download --no-deps --no-binary :all:`` (or from ``--sdists DIR``), checks its sha256,
unpacks it, leaves out the metadata packaging generated (``PKG-INFO``, ``*.egg-info``),
applies the task's ``base.patch`` (the bug put back; the feature, the tests or the docs
taken out; the deprecated use put back) and commits every file, ignored ones included
(isodate's generated ``version.py``: a run does not install the project), as the one
commit of ``main``, with a fixed author and date so that the commit id is the same on
every machine. Then ``git bundle create repo.bundle --all``.

Usage::

    .venv/bin/python benchmarks/repos/build_repos.py [--suite DIR] [--sdists DIR] [TASK...]
    .venv/bin/python benchmarks/repos/build_repos.py --check   # exit 1 if a bundle differs

``--check`` builds into a temporary directory and compares each commit id with the one
``main`` has in the task's ``repo.bundle``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

SUITE = Path(__file__).resolve().parent
BASE_PATCH = "base.patch"
BUNDLE = "repo.bundle"
#: The one commit's identity and date: fixed, so the commit id is reproducible.
COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "Dark Factory bench",
    "GIT_AUTHOR_EMAIL": "bench@darkfactory.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "Dark Factory bench",
    "GIT_COMMITTER_EMAIL": "bench@darkfactory.invalid",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **COMMIT_ENV}
    out = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def sdist(upstream: dict[str, str], sdists: Path | None, scratch: Path) -> Path:
    """The release's sdist, its sha256 checked."""
    stem = f"{upstream['name']}-{upstream['version']}"
    found = [
        p
        for d in ([sdists] if sdists else []) + [scratch]
        for p in d.glob("*.tar.gz")
        if p.name.lower().replace("_", "-") == f"{stem.lower().replace('_', '-')}.tar.gz"
    ]
    if not found:
        spec = f"{upstream['name']}=={upstream['version']}"
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        subprocess.run([*pip, "--no-binary", ":all:", spec, "-d", str(scratch)], check=True)
        return sdist(upstream, sdists, scratch)
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != upstream["sha256"]:
        raise SystemExit(f"{found[0]}: sha256 {digest}, task.yaml says {upstream['sha256']}")
    return found[0]


def build(task: Path, sdists: Path | None, out: Path, scratch: Path) -> str:
    """Write ``out`` (a bundle) for ``task``; the commit id of ``main``."""
    meta = yaml.safe_load((task / "task.yaml").read_text(encoding="utf-8"))
    upstream = meta["upstream"]
    archive = sdist(upstream, sdists, scratch)
    unpacked = scratch / f"src-{task.name}"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    (tree,) = list(unpacked.iterdir())
    (tree / "PKG-INFO").unlink(missing_ok=True)
    for info in [*tree.glob("*.egg-info"), *tree.glob("src/*.egg-info")]:
        shutil.rmtree(info)
    git(tree, "init", "--quiet", "--initial-branch=main")
    git(tree, "apply", "--whitespace=nowarn", str((task / BASE_PATCH).resolve()))
    git(tree, "add", "--all", "--force")  # generated files too (isodate/version.py)
    git(tree, "commit", "--quiet", "-m", f"{upstream['name']} {upstream['version']}")
    git(tree, "bundle", "create", "--quiet", str(out.resolve()), "--all")
    return git(tree, "rev-parse", "HEAD")


def bundled_commit(bundle: Path) -> str | None:
    if not bundle.is_file():
        return None
    for line in git(bundle.parent, "bundle", "list-heads", str(bundle.resolve())).splitlines():
        sha, ref = line.split()
        if ref == "refs/heads/main":
            return sha
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", type=Path, default=SUITE, help="the task directory")
    p.add_argument("--sdists", type=Path, default=None, help="take the sdists from here")
    p.add_argument("--check", action="store_true", help="only compare with the bundles")
    p.add_argument("names", nargs="*", help="tasks to build (default: every task)")
    args = p.parse_args(argv)
    tasks = sorted(
        d
        for d in args.suite.iterdir()
        if (d / "task.yaml").is_file() and (d / BASE_PATCH).is_file()
        if not args.names or d.name in args.names
    )
    differ = []
    with tempfile.TemporaryDirectory(prefix="build-repos-") as tmp:
        scratch = Path(tmp)
        for task in tasks:
            target = scratch / f"{task.name}.bundle" if args.check else task / BUNDLE
            commit = build(task, args.sdists, target, scratch)
            if args.check:
                if bundled_commit(task / BUNDLE) != commit:
                    differ.append(task.name)
            else:
                print(f"{task.name}: {BUNDLE} at {commit[:12]}")
    if differ:
        print(f"bundles that differ from a rebuild: {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
