"""The spec's acceptance tests: frozen once, read-only to every agent, re-checked.

``freeze`` copies ``workspace/acceptance/`` to the run's own ``acceptance/`` (the canonical
copy the sandbox mounts read-only) and hashes every file; ``changed`` compares the copy
with those hashes before each verdict. ``state`` is the flow's ``RunState``, ``env`` its
``RunEnv``.
"""

from __future__ import annotations

import shutil
from typing import Any

from darkfactory.flowstate import ACCEPTANCE_DIR, hash_tree


def changed(state: Any, env: Any) -> bool:
    """Re-check the frozen tests against their hashes; on any change set the reason, trace it."""
    if not state.acceptance_frozen:
        return False
    frozen = state.acceptance_hashes
    now = hash_tree(env.acceptance_dir) if env.acceptance_dir.is_dir() else {}
    modified = sorted(f for f in frozen if f in now and now[f] != frozen[f])
    missing = sorted(f for f in frozen if f not in now)
    added = sorted(f for f in now if f not in frozen)
    if not (modified or missing or added):
        return False
    env.trace.write("acceptance_changed", changed=modified, missing=missing, added=added)
    what = "; ".join(
        f"{label}: {', '.join(files)}"
        for label, files in (("changed", modified), ("missing", missing), ("added", added))
        if files
    )
    state.reason = (
        f"the frozen acceptance tests in {env.acceptance_dir} no longer match their "
        f"hashes ({what}); the verdict would not be trustworthy, so the run fails"
    )
    return True


def freeze(state: Any, env: Any) -> None:
    """Make the workspace's acceptance tests the run's canonical, read-only copy, hashed."""
    src = env.workspace / ACCEPTANCE_DIR
    dst = env.acceptance_dir
    if dst.exists():
        shutil.rmtree(dst)
    if src.is_dir():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        dst.mkdir(parents=True)
    state.acceptance_hashes = hash_tree(dst)
    state.acceptance_frozen = True
    env.ctx.protected.add(ACCEPTANCE_DIR)
    env.trace.write("acceptance_frozen", files=sorted(state.acceptance_hashes))
