"""The run's workspace is a real git repository with one commit per phase.

``run`` is how the host runs git: nothing a model writes in the workspace can make it execute.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from darkfactory.errors import DarkFactoryError

#: ``-c`` settings on every call, so no config can make git execute anything: no fsmonitor,
#: hooks, pager, signing, background gc, transport (so no ssh, ext:: or lazy fetch) or
#: credential helper, and no submodule recursion. Filter, textconv and diff/merge drivers
#: named by a workspace's ``.gitattributes`` resolve only through config, and the only
#: config read is the repository's own (no global, system or XDG file), which only Dark
#: Factory writes; nested repositories, whose config a child git would read, are removed.
_CONFIG = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.untrackedCache=false",
    "core.attributesFile=/dev/null",
    "core.excludesFile=/dev/null",
    "core.pager=cat",
    "core.protectNTFS=true",
    "submodule.recurse=false",
    "diff.ignoreSubmodules=all",
    "status.submoduleSummary=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "log.showSignature=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "protocol.allow=never",
    "credential.helper=",
)

_IDENTITY = {
    "GIT_AUTHOR_NAME": "Dark Factory",
    "GIT_AUTHOR_EMAIL": "darkfactory@localhost",
    "GIT_COMMITTER_NAME": "Dark Factory",
    "GIT_COMMITTER_EMAIL": "darkfactory@localhost",
}

#: A path component git treats as its metadata (``verify_path``): ``.git`` in any case and
#: its NTFS aliases (``git~1``, trailing dots or spaces, ``.git:stream``).
_DOTGIT = re.compile(r"(\.git|git~1)[. ]*(:.*)?", re.IGNORECASE | re.DOTALL)


class UnsafeRepository(DarkFactoryError):
    """The workspace's git metadata is not what Dark Factory made; git is not run on it."""


def is_dotgit(name: str) -> bool:
    """Whether the path component ``name`` names git metadata (``.git``, ``.GIT``, ``git~1``)."""
    return _DOTGIT.fullmatch(name) is not None


@functools.cache
def _empty_home() -> str:
    home = tempfile.mkdtemp(prefix="darkfactory-git-home-")
    atexit.register(shutil.rmtree, home, True)
    return home


def _env(repo: Path) -> dict[str, str]:
    # Only absolute PATH entries: "" or "." would find a workspace `git` from the cwd.
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)
    )
    env = {k: v for k, v in os.environ.items() if k == "LANG" or k.startswith("LC_")}
    return {
        **env,
        **_IDENTITY,
        "PATH": path,
        "HOME": _empty_home(),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_CEILING_DIRECTORIES": str(repo),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_NO_LAZY_FETCH": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_PAGER": "cat",
    }


def run(repo: Path, *args: str) -> str:
    """``git ARGS`` on the repository at ``repo`` (never discovered), hardened; its stdout.

    Raises ``UnsafeRepository`` if ``repo/.git`` exists but is not a real directory, and
    ``subprocess.CalledProcessError`` if git fails.
    """
    repo = Path(os.path.realpath(repo))
    git_dir = repo / ".git"
    try:
        mode = git_dir.lstat().st_mode
    except FileNotFoundError:
        mode = stat.S_IFDIR  # `git init` makes it
    if not stat.S_ISDIR(mode):
        raise UnsafeRepository(f"{git_dir} is not a directory (a link or a gitfile?)")
    env = _env(repo)
    git = shutil.which("git", path=env["PATH"]) or "git"
    config = [arg for setting in _CONFIG for arg in ("-c", setting)]
    argv = [git, f"--git-dir={git_dir}", f"--work-tree={repo}", *config, *args]
    out = subprocess.run(
        argv,
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


_GIT_FILES = frozenset({".gitmodules", ".gitattributes", ".gitignore", ".mailmap"})


def remove_nested_git(repo: Path) -> list[str]:
    """Delete every ``.git`` under the work tree but its own, never following a link.

    A nested repository, gitfile or link would be committed as a submodule, and its config
    read by the git that looks into it. Links named ``.gitmodules``, ``.gitattributes``,
    ``.gitignore`` or ``.mailmap`` go too (git refuses to commit them). Returns the removed
    paths, workspace-relative.
    """
    repo = Path(os.path.realpath(repo))
    removed = []

    def fail(exc: OSError) -> None:
        raise UnsafeRepository(f"cannot look for nested .git under {repo}: {exc}")

    for dirpath, dirnames, filenames in os.walk(repo, onerror=fail):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            if name.lower() in _GIT_FILES and (here / name).is_symlink():
                # git refuses to add a linked .gitmodules (and friends): every commit would fail.
                (here / name).unlink()
                removed.append((here / name).relative_to(repo).as_posix())
            elif is_dotgit(name) and not (here == repo and name == ".git"):
                path = here / name
                try:
                    if stat.S_ISDIR(path.lstat().st_mode):  # a real directory, not a link
                        shutil.rmtree(path)  # never follows links (``avoids_symlink_attacks``)
                    else:
                        path.unlink()
                except OSError as exc:
                    raise UnsafeRepository(f"cannot remove the nested {path}: {exc}") from None
                removed.append(path.relative_to(repo).as_posix())
        dirnames[:] = [d for d in dirnames if not is_dotgit(d)]
    return sorted(removed)


def init(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    run(repo, "init", "-q", "--template=", "-b", "main")
    run(repo, "config", "commit.gpgsign", "false")


def commit_all(repo: Path, message: str) -> str | None:
    """Commit everything in the work tree; the new commit's sha, or None if nothing changed."""
    remove_nested_git(repo)
    # A gitlink already in the index (a repository that was there before) would stay one.
    staged = run(repo, "ls-files", "--stage", "-z").split("\0")
    links = [entry.split("\t", 1)[1] for entry in staged if entry.startswith("160000 ")]
    if links:
        run(repo, "--literal-pathspecs", "rm", "-q", "-f", "--cached", "--", *links)
    run(repo, "add", "-A")
    if not run(repo, "status", "--porcelain"):
        return None
    run(repo, "commit", "-q", "--no-verify", "-m", message)
    return run(repo, "rev-parse", "HEAD")


def head(repo: Path) -> str:
    """The sha of the current commit."""
    return run(repo, "rev-parse", "HEAD")


def log(repo: Path) -> list[str]:
    """Commit subjects, oldest first."""
    text = run(repo, "log", "--no-ext-diff", "--no-textconv", "--reverse", "--format=%s")
    return text.splitlines() if text else []


def changed_files(repo: Path, since: str | None = None) -> list[str]:
    """Files changed by the commits after ``since`` (all files when None)."""
    if since is None:
        text = run(repo, "ls-files")
    else:
        text = run(repo, "diff", "--no-ext-diff", "--no-textconv", "--name-only", since, "HEAD")
    return text.splitlines() if text else []


def uncommitted(repo: Path) -> list[str]:
    """Paths changed, added or removed since the last commit (untracked files included)."""
    remove_nested_git(repo)
    changed = run(repo, "diff", "--no-ext-diff", "--no-textconv", "--name-only", "-z", "HEAD")
    new = run(repo, "ls-files", "--others", "--exclude-standard", "-z")
    return sorted({p for p in (changed + "\0" + new).split("\0") if p})


def stash_uncommitted(repo: Path, message: str) -> bool:
    """Set aside uncommitted work (kept in ``git stash list``); True if there was any."""
    remove_nested_git(repo)
    if not run(repo, "status", "--porcelain"):
        return False
    run(repo, "stash", "push", "--include-untracked", "-m", message)
    return True


def export(repo: Path, commit: str, dest: Path) -> None:
    """Write the files ``commit`` tracks into ``dest`` (new): ``git archive``, then extracted.

    Extracted with tarfile's ``data`` filter: an absolute path, a link that leaves ``dest``
    or a device raises ``tarfile.FilterError``; setuid bits and write bits for others go.
    """
    import tarfile  # only a deploy needs it

    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise ValueError(f"not a commit id: {commit!r}")
    with tempfile.TemporaryDirectory(prefix="darkfactory-archive-") as tmp:
        tar = Path(tmp) / "commit.tar"
        run(repo, "archive", "--format=tar", f"--output={tar}", commit)
        dest.mkdir(mode=0o755)
        with tarfile.open(tar) as archive:
            archive.extractall(dest, filter="data")


# -- a user's repository (darkfactory/repo): read it, clone it, never write it ------------

#: The user's settings an https transfer needs and may take from the environment: the
#: certificate authorities to trust (a company CA) and the proxy. Never a credential
#: helper, an askpass or a config file: those would run or read more than the transfer.
HTTPS_ENV = (
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
)


#: ``user:password@`` in a URL (a repository's, a proxy's from ``HTTPS_PROXY``).
_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def without_credentials(text: str) -> str:
    """``text`` (what git said) with the credentials any URL in it carries left out."""
    return _CREDENTIALS.sub(r"\1", text)


def _https(env: dict[str, str]) -> dict[str, str]:
    """``env`` for an https transfer: a low-speed abort (under 1 KB/s for 30 s is a dead
    connection) and the user's ``HTTPS_ENV`` settings."""
    taken = {k: v for k, v in os.environ.items() if k in HTTPS_ENV and v}
    return {**env, **taken, "GIT_HTTP_LOW_SPEED_LIMIT": "1000", "GIT_HTTP_LOW_SPEED_TIME": "30"}


def _bounded(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run git ``argv`` within ``timeout`` seconds, its whole process group killed after.

    Raises ``subprocess.CalledProcessError`` (git failed) or ``subprocess.TimeoutExpired``.
    """
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # git's helpers (upload-pack, remote-https) die with it
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.communicate()
            raise
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, out, err)
    return out.strip()


def _git_argv(env: dict[str, str], *extra_config: str) -> list[str]:
    git = shutil.which("git", path=env["PATH"]) or "git"
    config = [arg for setting in (*_CONFIG, *extra_config) for arg in ("-c", setting)]
    return [git, *config]


def query(git_dir: Path, *args: str, work_tree: Path | None = None, timeout: float = 120.0) -> str:
    """``git ARGS`` read from the repository whose git directory is ``git_dir``; its stdout.

    For a repository Dark Factory did not make (a user's, or a bare one): hardened like
    ``run``, and with ``--no-optional-locks``, so a read writes nothing under ``git_dir``
    (no index refresh, no lock file). ``work_tree`` only for commands that look at one
    (``status``). Raises ``CalledProcessError`` or ``TimeoutExpired``.
    """
    git_dir = Path(os.path.realpath(git_dir))
    env = _env(work_tree or git_dir)
    argv = [*_git_argv(env), "--no-optional-locks", f"--git-dir={git_dir}"]
    if work_tree is not None:
        argv.append(f"--work-tree={os.path.realpath(work_tree)}")
    return _bounded([*argv, *args], cwd=Path(_empty_home()), env=env, timeout=timeout)


def _transport(source: str) -> str:
    """The one git transport a clone of ``source`` may use: https for a URL, else file."""
    return "https" if source.startswith("https://") else "file"


def ls_remote(url: str, *, timeout: float) -> str:
    """The refs an ``https://`` repository advertises (``git ls-remote``), within ``timeout``."""
    if _transport(url) != "https":
        raise ValueError(f"not an https URL: {url!r}")
    env = _https(_env(Path(_empty_home())))
    argv = [*_git_argv(env, "protocol.https.allow=always"), "ls-remote", "--", url]
    return _bounded(argv, cwd=Path(_empty_home()), env=env, timeout=timeout)


def clone(source: str, dest: Path, *, bare: bool = False, timeout: float = 600.0) -> None:
    """Clone ``source`` (a local path, ``file://`` or ``https://`` URL) into the new ``dest``.

    Objects are copied (``--no-local``: no hard links into the source, no alternates),
    nothing is checked out, no hooks are installed (an empty ``--template``), no
    submodule is touched, and only one transport is allowed: ``file`` for a local
    source, ``https`` for a URL. The source repository is only read (``upload-pack``).
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or dest.is_symlink() or any(dest.iterdir())):
        raise FileExistsError(f"clone destination is not a new, empty directory: {dest}")
    transport = _transport(source)
    env = _https(_env(dest)) if transport == "https" else _env(dest)
    argv = [*_git_argv(env, f"protocol.{transport}.allow=always"), "clone", "--quiet"]
    argv += ["--no-local", "--template=", "--no-recurse-submodules"]
    argv += ["--bare"] if bare else ["--no-checkout"]
    _bounded([*argv, "--", source, str(dest)], cwd=Path(_empty_home()), env=env, timeout=timeout)


# -- delivering a run's branch to a remote (darkfactory/repo/deliver.py) ------------------


def remote_command(
    repo: Path,
    transport: str,
    *args: str,
    hidden_config: dict[str, str] | None = None,
    timeout: float = 300.0,
) -> str:
    """``git ARGS`` on the run's repository ``repo`` that talks to a remote (``push``,
    ``ls-remote``) over ``transport`` only (``file``, ``https``, or ``http``, which the
    caller keeps to loopback); its stdout.

    Hardened like ``run``, within ``timeout`` (its process group killed after), redirects
    not followed. ``hidden_config`` (``http.extraHeader`` with a token) reaches git through
    ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_<n>``/``GIT_CONFIG_VALUE_<n>`` in its environment,
    never its argv, so no process listing shows it; no ``GIT_TRACE*`` of yours is passed, so
    no trace logs it. Raises ``UnsafeRepository``, ``CalledProcessError`` or ``TimeoutExpired``.
    """
    if transport not in ("file", "https", "http"):
        raise ValueError(f"not a transport a run may push over: {transport!r}")
    repo = Path(os.path.realpath(repo))
    git_dir = repo / ".git"
    if not stat.S_ISDIR(git_dir.lstat().st_mode):
        raise UnsafeRepository(f"{git_dir} is not a directory (a link or a gitfile?)")
    env = _https(_env(repo)) if transport != "file" else _env(repo)
    hidden = hidden_config or {}
    if hidden:
        env["GIT_CONFIG_COUNT"] = str(len(hidden))
        for n, (key, value) in enumerate(hidden.items()):
            env[f"GIT_CONFIG_KEY_{n}"] = key
            env[f"GIT_CONFIG_VALUE_{n}"] = value
    extra = (f"protocol.{transport}.allow=always", "http.followRedirects=false")
    argv = [*_git_argv(env, *extra), f"--git-dir={git_dir}", f"--work-tree={repo}", *args]
    return _bounded(argv, cwd=repo, env=env, timeout=timeout)
