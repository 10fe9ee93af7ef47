"""The generated project's dependencies: declared, downloaded on the host, installed offline.

The install tests download a small pure-Python wheel (``six``) with the host's pip, from
the session's own package index on 127.0.0.1 (``local_index``, tests/pypi_local.py: wheels
made by the test session, never the public index), then install it in a real sandbox
(docker and bwrap) that has no network.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerd import IMAGE, docker_engine  # noqa: F401  (a fixture)
from pypi_local import SDIST_ONLY, LocalIndex

from darkfactory.engine import deps
from darkfactory.sandbox import bwrap_problem, open_sandbox
from darkfactory.sandbox.base import Limits, Sandbox, SandboxSpec

#: Pinned, and not the version Dark Factory's own environment has (1.17, also on the
#: index): what the sandbox imports must be what was installed for the project.
SIX = "six==1.16.0"


# -- what a project declares ----------------------------------------------------------------
def test_requirements_txt_plain_requirements(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "# the app's needs\n"
        "six==1.16.0  # compat\n"
        "attrs[tests]>=23 ; python_version >= '3.8'\n"
        "\n"
        "requests \\\n  >=2.0\n"
    )
    assert deps.read_requirements(tmp_path) == (
        "requirements.txt",
        ["six==1.16.0", "attrs[tests]>=23 ; python_version >= '3.8'", "requests >=2.0"],
        [],
    )


def test_pyproject_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\ndependencies = ["six==1.16.0", "attrs"]\n'
    )
    assert deps.read_requirements(tmp_path) == ("pyproject.toml", ["six==1.16.0", "attrs"], [])
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')
    assert deps.read_requirements(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[project\n")
    source, _, problems = deps.read_requirements(tmp_path) or ("", [], [])
    assert source == "pyproject.toml" and "not valid TOML" in problems[0]


def test_nothing_declared(tmp_path: Path) -> None:
    assert deps.read_requirements(tmp_path) is None
    (tmp_path / "requirements.txt").write_text("# nothing yet\n\n")
    assert deps.read_requirements(tmp_path) is None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("-r /etc/secrets.txt", "pip options are not accepted"),
        ("-e .", "pip options are not accepted"),
        ("--index-url http://evil.example/simple", "pip options are not accepted"),
        ("--find-links /root", "pip options are not accepted"),
        ("pkg @ https://evil.example/pkg.whl", "URLs are not accepted"),
        ("pkg @ file:///etc/passwd", "URLs are not accepted"),
        ("git+https://example.com/x.git", "not a valid requirement"),
        ("./local/pkg", "not a valid requirement"),
        ("six==1.16.0 --hash=sha256:abc", "not a valid requirement"),
    ],
)
def test_what_would_steer_the_hosts_pip_is_refused(tmp_path: Path, line: str, why: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"six\n{line}\n")
    source, reqs, problems = deps.read_requirements(tmp_path) or ("", [], [])
    assert (source, reqs) == ("requirements.txt", ["six"])
    assert len(problems) == 1 and "line 2" in problems[0] and why in problems[0], problems


def test_a_symlinked_requirements_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "requirements.txt").symlink_to(secret)
    result = deps.ensure(None, ws, tmp_path)  # type: ignore[arg-type]  # refused before use
    assert result is not None and result.failed == "read"
    assert "symlink" in result.summary() and "hunter2" not in result.summary()


# -- downloaded on the host, installed in a sandbox without a network ---------------------
@pytest.fixture(params=["docker", "bwrap"])
def run_sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:
    """A sandbox built as a run builds it: deps mounts, /deps on PYTHONPATH."""
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
    elif bwrap_problem() is not None:
        pytest.skip(f"bwrap does not work here: {bwrap_problem()}")
    run_dir = tmp_path / "run"
    ws = run_dir / "workspace"
    ws.mkdir(parents=True)
    sb = open_sandbox(
        request.param,
        SandboxSpec(
            workspace=ws,
            mounts=deps.mounts(run_dir),
            pythonpath=[deps.DEPS_TARGET],
            limits=Limits(timeout_s=60),
            image=IMAGE,
            hand_over=True,
        ),
    )
    yield sb, run_dir
    sb.close()


def test_a_pypi_package_is_installed_and_importable_with_no_network(
    run_sandbox: tuple[Sandbox, Path], local_index: LocalIndex
) -> None:
    sb, run_dir = run_sandbox
    ws = run_dir / "workspace"
    (ws / "requirements.txt").write_text(f"{SIX}\n")
    local_index.requested.clear()
    result = deps.ensure(sb, ws, run_dir, timeout_s=120)
    assert result is not None and result.ok, result and result.summary()
    # The host's pip got the pinned wheel from the loopback index (PIP_INDEX_URL).
    assert "/simple/six/" in local_index.requested
    assert local_index.files_requested() == ["six-1.16.0-py2.py3-none-any.whl"]
    assert result.installed == ("six 1.16.0",)
    assert result.exec is not None  # pip looked at the wheelhouse and at nothing else
    assert f"Looking in links: {sb.path_of(deps.WHEELHOUSE_TARGET)}" in result.exec.stdout
    assert "Looking in indexes" not in result.exec.stdout
    assert "six 1.16.0" in result.summary()
    assert any(p.name.startswith("six-1.16.0-") for p in (run_dir / "wheelhouse").iterdir())
    # Any later command imports it from the install target, not from anything else.
    deps_dir = sb.path_of(deps.DEPS_TARGET)
    r = sb.run([sb.python, "-c", "import six; print(six.__version__, six.__file__)"])
    assert (r.exit_code, r.stdout.strip()) == (0, f"1.16.0 {deps_dir}/six.py"), r
    # ... and the sandbox still has no network: nothing reaches a listener on the host.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
        r = sb.run([sb.python, "-c", code])
        assert r.exit_code != 0
        with pytest.raises(BlockingIOError):
            server.accept()
    # Unchanged requirements: nothing is downloaded or installed again.
    again = deps.ensure(sb, ws, run_dir, timeout_s=120)
    assert again is not None and again.cached and again.installed == ("six 1.16.0",)
    # No requirements any more: the installed packages go too.
    (ws / "requirements.txt").unlink()
    assert deps.ensure(sb, ws, run_dir) is None
    assert list((run_dir / "deps").iterdir()) == []
    r = sb.run([sb.python, "-c", "import six; print(six.__file__)"])
    assert deps_dir not in r.stdout


@pytest.mark.parametrize("requirement", ["darkfactory-no-such-package-xyzzy==1.0", SDIST_ONLY])
def test_a_package_without_a_wheel_fails_with_pips_words(
    run_sandbox: tuple[Sandbox, Path], local_index: LocalIndex, requirement: str
) -> None:
    """Not on the index at all, or only as a source distribution: nothing is built."""
    sb, run_dir = run_sandbox
    ws = run_dir / "workspace"
    (ws / "requirements.txt").write_text(f"{requirement}\n")
    local_index.requested.clear()
    result = deps.ensure(sb, ws, run_dir, timeout_s=120)
    assert result is not None and result.failed == "download"
    text = result.summary()
    assert text.startswith("DEPENDENCIES FAILED: downloading the wheels")
    name = requirement.split("==")[0]
    assert f"No matching distribution found for {requirement}" in text, text
    assert "no source distribution is ever built" in text
    assert len(text) < deps.MAX_ERROR_CHARS + 500
    # pip asked the loopback index, and never fetched (let alone ran) the sdist.
    assert f"/simple/{name}/" in local_index.requested
    assert local_index.files_requested() == []
    assert not local_index.sdist_marker.exists()
    assert not any((run_dir / "deps").iterdir())


def test_a_refused_requirement_goes_to_the_fix_task(run_sandbox: tuple[Sandbox, Path]) -> None:
    sb, run_dir = run_sandbox
    ws = run_dir / "workspace"
    (ws / "requirements.txt").write_text("--index-url http://evil.example/simple\nsix\n")
    result = deps.ensure(sb, ws, run_dir)
    assert result is not None and result.failed == "read" and result.exec is None
    assert "requirements.txt line 1" in result.summary()
    assert not (run_dir / "wheelhouse" / deps.REQUIREMENTS).exists()  # pip never ran
