"""The spec's acceptance tests: frozen once, read-only to every agent, re-checked.

``freeze`` copies ``workspace/acceptance/`` to the run's own ``acceptance/`` (the canonical
copy the sandbox mounts read-only) through ``hostio`` and hashes every file; ``changed``
compares the copy with those hashes before each verdict.
"""

from __future__ import annotations

from darkfactory.engine.environment import RunEnv
from darkfactory.engine.state import RunState
from darkfactory.workspace import hostio
from darkfactory.workspace.rundir import ACCEPTANCE_DIR


def changed(state: RunState, env: RunEnv) -> bool:
    """Re-check the frozen tests against their hashes; on any change set the reason, trace it."""
    if not state.acceptance_frozen:
        return False
    frozen = state.acceptance_hashes
    now = hostio.hash_tree(env.acceptance_dir)
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


def freeze(state: RunState, env: RunEnv) -> None:
    """Make the workspace's acceptance tests the run's canonical, read-only copy, hashed.

    Only directories and regular files are copied (``hostio``): a symlink, FIFO or device
    an agent put there is left out and traced as a ``security`` event, never followed.
    """
    dst = env.acceptance_dir
    hostio.remove(dst)
    kind = hostio.kind_of(env.workspace, ACCEPTANCE_DIR)
    if kind == "dir":
        copied = hostio.copy_tree(env.workspace, ACCEPTANCE_DIR, dst)
    else:
        dst.mkdir(parents=True)
        copied = hostio.Copied(
            refused=[(ACCEPTANCE_DIR, f"a {kind}, not a directory")] if kind else []
        )
    if copied.refused:
        env.trace.write(
            "security",
            what="acceptance_entries_refused",
            paths=[f"{path}: {why}" for path, why in copied.refused],
        )
    state.acceptance_hashes = hostio.hash_tree(dst)
    state.acceptance_frozen = True
    env.ctx.protected.add(ACCEPTANCE_DIR)
    env.trace.write("acceptance_frozen", files=sorted(state.acceptance_hashes))


def hash_frozen(state: RunState, env: RunEnv) -> None:
    """A repository run's ticket tests, written to the run's ``acceptance/`` at start: hashed."""
    state.acceptance_hashes = hostio.hash_tree(env.acceptance_dir)
    state.acceptance_frozen = bool(state.acceptance_hashes)
    env.trace.write("acceptance_frozen", files=sorted(state.acceptance_hashes))
