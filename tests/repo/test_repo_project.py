"""The Python project in a repository, read statically: requirements, tests, settings, refusals.

Nothing of a repository runs on the host: a ``setup.py`` that would leave a marker is read
with ``ast`` only, and links are never followed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from darkfactory.config import ConfigError, RepoConfig, load_factory
from darkfactory.errors import ExitCode
from darkfactory.repo.errors import NotAPythonProject, RepoError, RepoSettingsError
from darkfactory.repo.project import DEFAULT_TEST_COMMAND, check_python, detect_project


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


PYPROJECT = """\
[project]
name = "Tiny-Lib"
version = "1.2.0"
requires-python = ">=3.9"
dependencies = ["six==1.16.0", "attrs>=23 ; python_version >= '3.8'"]

[project.optional-dependencies]
test = ["pytest-timeout", "tiny-lib[extra]"]
dev = ["mypy"]
extra = ["iniconfig"]
docs = ["mkdocs"]

[dependency-groups]
tests = ["hypothesis", {include-group = "lint"}]
lint = ["ruff"]
"""


def test_pyproject_dependencies_extras_and_groups(tmp_path: Path) -> None:
    root = tree(tmp_path, {"pyproject.toml": PYPROJECT, "tiny_lib.py": "", "tests/test_x.py": ""})
    project = detect_project(root)
    assert (project.name, project.version, project.requires_python) == (
        "Tiny-Lib",
        "1.2.0",
        ">=3.9",
    )
    assert project.requirements == (
        "six==1.16.0",
        'attrs>=23; python_version >= "3.8"',
        "pytest-timeout",
        "iniconfig",  # the project's own [extra], expanded
        "hypothesis",
        "ruff",
    )
    assert project.optional == ("mypy",)
    assert project.sources == ("pyproject.toml",)
    assert project.test_command == DEFAULT_TEST_COMMAND == ("python", "-m", "pytest", "-q")
    assert project.pytest_args == ()
    assert project.has_tests and project.import_roots == (".",)


def test_setup_cfg(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "setup.cfg": (
                "[metadata]\nname = cfgpkg\nversion = attr: cfgpkg.__version__\n"
                "[options]\ninstall_requires =\n    six==1.16.0\n    # a comment\n"
                "    requests>=2 ; python_version>'3'\npython_requires = >=3.8\n"
                "[options.extras_require]\ntesting =\n    pytest-mock\nfast = ujson\n"
            ),
            "src/cfgpkg/__init__.py": "",
        },
    )
    project = detect_project(root)
    assert (project.name, project.version, project.requires_python) == ("cfgpkg", None, ">=3.8")
    assert project.requirements == (
        "six==1.16.0",
        'requests>=2; python_version > "3"',
        "pytest-mock",
    )
    assert project.import_roots == (".", "src")
    assert not project.has_tests
    assert any("no test files found" in n for n in project.notes)


def test_setup_py_is_read_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "setup-py-ran"
    root = tree(
        tmp_path / "repo",
        {
            "setup.py": (
                "import pathlib\n"
                f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
                "from setuptools import setup\n"
                "BASE = ['six==1.16.0']\n"
                "setup(\n"
                "    name='legacy',\n"
                "    version='0.3',\n"
                "    install_requires=BASE + ['attrs'],\n"
                "    tests_require=['pytest-cov'],\n"
                "    extras_require={'test': ['freezegun'], 'dev': 'black'},\n"
                ")\n"
            ),
            "legacy.py": "",
        },
    )
    project = detect_project(root)
    assert not marker.exists(), "setup.py ran"
    assert project.name == "legacy" and project.version == "0.3"
    assert project.requirements == ("six==1.16.0", "attrs", "pytest-cov", "freezegun")
    assert project.optional == ("black",)


def test_a_setup_py_that_computes_its_requirements_is_noted(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "setup.py": (
                "from setuptools import setup\n"
                "setup(name='x', install_requires=open('reqs.txt').read().split())\n"
            ),
            "x.py": "",
        },
    )
    project = detect_project(root)
    assert project.requirements == ()
    assert any(
        "install_requires is not a literal (setup.py is never run)" in n for n in project.notes
    )


def test_requirements_files(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "requirements.txt": (
                "-r requirements/base.txt\n"
                "-e .\n"
                "six==1.16.0 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb\n"
                "--index-url https://example.invalid/simple\n"
                "evil @ https://example.invalid/evil.whl\n"
                "-e git+https://example.invalid/x.git#egg=x\n"
                "-r ../outside.txt\n"
                "-c constraints.txt\n"
            ),
            "requirements/base.txt": "attrs  # needed\n",
            "requirements-test.txt": "pytest-xdist\n",
            "dev-requirements.txt": "tox\n",
            "requirements/docs.txt": "mkdocs\n",
            "app.py": "",
        },
    )
    project = detect_project(root)
    assert project.requirements == ("attrs", "six==1.16.0", "pytest-xdist")
    assert project.optional == ("tox",)
    assert [s.split(": ")[0] for s in project.skipped] == [
        "requirements.txt line 7",
        "requirements.txt line 8",
        "requirements.txt line 9",
        "requirements/docs.txt",
    ]
    assert "URLs are not accepted" in project.skipped[0]
    assert "outside the repository" in project.skipped[2]
    assert project.skipped[3] == (
        "requirements/docs.txt: the whole file: documentation, not what the tests need"
    )
    assert any("pip option ignored" in n and "line 6" in n for n in project.notes)
    assert any("constraints are not applied" in n for n in project.notes)


def test_only_runtime_and_test_requirements_files_count(tmp_path: Path) -> None:
    tools = {
        "requirements/typing.txt": "mypy\n",
        "requirements/docs.txt": "sphinx\n",
        "requirements/lint.txt": "ruff\n",
        "requirements/style.txt": "black\n",
        "requirements/mypy.txt": "types-six\n",
        "requirements/build.txt": "build\n",
        "requirements/pre-commit.txt": "pre-commit\n",
        "requirements-docs.txt": "mkdocs\n",
        "requirements/extras.txt": "lxml\n",  # a name that says nothing: skipped too
    }
    root = tree(
        tmp_path,
        {
            "requirements.txt": "six==1.16.0\n",
            "requirements/base.txt": "attrs\n",
            # The developer file, read first in name order, includes the test file: the
            # test file's requirements stay required (tests.txt is a test file of its own).
            "requirements/dev.txt": "-r tests.txt\n-r lint.txt\ntox\n",
            "requirements/tests.txt": "-r base.txt\npytest-xdist\n",
            "test-requirements.txt": "freezegun\n",
            "requirements-tests.txt": "hypothesis\n",
            **tools,
            "app.py": "",
        },
    )
    project = detect_project(root)
    assert project.requirements == (
        "six==1.16.0",
        "attrs",
        "hypothesis",
        "pytest-xdist",
        "freezegun",
    )
    # A developer file's include is read, whatever its name: it is optional, like its file.
    assert project.optional == ("ruff", "tox")
    skipped = {s.split(": ")[0]: s.split(": ", 2)[2] for s in project.skipped}
    assert sorted(skipped) == sorted(set(tools) - {"requirements/lint.txt"})
    assert skipped["requirements/typing.txt"] == "type checking, not what the tests need"
    assert skipped["requirements/mypy.txt"] == "type checking, not what the tests need"
    assert skipped["requirements/style.txt"] == "linting and style, not what the tests need"
    assert skipped["requirements/build.txt"] == "building and releasing, not what the tests need"
    assert skipped["requirements-docs.txt"] == "documentation, not what the tests need"
    assert skipped["requirements/extras.txt"] == "its name says neither runtime nor tests"
    assert "requirements/lint.txt" in project.sources  # read through dev.txt's -r


def test_links_in_a_repository_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2-package\n")
    root = tree(tmp_path / "repo", {"setup.cfg": "[metadata]\nname = x\n", "x.py": ""})
    (root / "requirements.txt").symlink_to(secret)
    project = detect_project(root)
    assert project.requirements == ()
    assert any("requirements.txt is not read" in n for n in project.notes)
    (root / ".darkfactory.yaml").symlink_to(secret)
    with pytest.raises(RepoSettingsError, match="cannot be read"):
        detect_project(root)


# -- .darkfactory.yaml -------------------------------------------------------------------


def test_settings_file(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\n',
            "x.py": "",
            ".darkfactory.yaml": (
                "setup:\n"
                "  - [python, -c, \"open('gen.txt', 'w').write('1')\"]\n"
                "  - python tools/make_data.py --small\n"
                "test_command: [python, -m, pytest, -q, tests/unit, -k, 'not slow']\n"
                "python: '>=3.10'\n"
            ),
        },
    )
    project = detect_project(root)
    assert project.setup == (
        ("python", "-c", "open('gen.txt', 'w').write('1')"),
        ("python", "tools/make_data.py", "--small"),
    )
    assert project.test_command == ("python", "-m", "pytest", "-q", "tests/unit", "-k", "not slow")
    assert project.pytest_args == ("-q", "tests/unit", "-k", "not slow")
    assert project.python == ">=3.10"
    assert check_python(project, "3.11") == []


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("test_command: [make, test]\n", 1, "test_command", "must run pytest"),
        ("setup: []\ntest_comand: [pytest]\n", 2, "test_comand", "unknown key"),
        ("python: three\n", 1, "python", "is not a Python version"),
        ("setup: [[]]\n", 1, "setup.0", "at least 1 item"),
        ("- a list\n", 1, None, "must be a mapping"),
        ("setup: [\n", None, None, ""),
    ],
)
def test_a_bad_settings_file(
    tmp_path: Path, text: str, line: int | None, key: str | None, words: str
) -> None:
    root = tree(tmp_path, {"setup.py": "", "x.py": "", ".darkfactory.yaml": text})
    with pytest.raises(RepoSettingsError) as caught:
        detect_project(root)
    err = caught.value
    assert err.exit_code == ExitCode.BAD_INPUT
    assert err.file == ".darkfactory.yaml"
    if line is not None:
        assert err.line == line
    assert err.key == key or key is None
    assert words in str(err)


def test_the_python_a_repository_asks_for(tmp_path: Path) -> None:
    root = tree(tmp_path, {"setup.py": "", "x.py": "", ".darkfactory.yaml": "python: '3.8'\n"})
    project = detect_project(root)
    assert check_python(project, "3.8") == []
    with pytest.raises(RepoError) as caught:
        check_python(project, "3.11")
    assert caught.value.exit_code == 2
    assert "asks for Python 3.8 (.darkfactory.yaml python:), the sandbox has Python 3.11" in str(
        caught.value
    )
    relaxed = project.model_copy(update={"python": None, "requires_python": "<3.9"})
    assert check_python(relaxed, "3.11") == [
        "the project requires Python <3.9; the sandbox has 3.11"
    ]


# -- not a Python project ----------------------------------------------------------------


def test_a_javascript_repository_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {"package.json": "{}", "index.js": "", "lib/a.js": "", "lib/b.ts": ""})
    with pytest.raises(NotAPythonProject) as caught:
        detect_project(root)
    err = caught.value
    assert err.exit_code == ExitCode.BAD_INPUT
    assert "is not a Python project: it has no Python files; it is mostly JavaScript" in err.message
    assert err.hint == "Dark Factory works on Python repositories only"


def test_python_files_without_a_project_are_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {"script.py": "print(1)\n"})
    with pytest.raises(NotAPythonProject, match=r"no pyproject\.toml, setup\.cfg, setup\.py"):
        detect_project(root)
    tree(root, {".darkfactory.yaml": "test_command: [pytest]\n"})
    assert detect_project(root).test_command == ("pytest",)


def test_a_repository_mostly_in_another_language_is_refused(tmp_path: Path) -> None:
    files = {f"cmd/tool{i}.go": "package main\n" for i in range(7)}
    root = tree(tmp_path, {**files, "go.mod": "module x\n", "setup.py": "", "bindings.py": ""})
    with pytest.raises(NotAPythonProject) as caught:
        detect_project(root)
    assert "mostly Go: 7 Go files against 2 Python files" in caught.value.message
    assert caught.value.hint is not None and ".darkfactory.yaml" in caught.value.hint
    tree(root, {".darkfactory.yaml": "test_command: [pytest, bindings_test.py]\n"})
    assert detect_project(root).pytest_args == ("bindings_test.py",)


def test_vendored_code_does_not_count(tmp_path: Path) -> None:
    files = {f"node_modules/dep/f{i}.js": "" for i in range(20)}
    root = tree(tmp_path, {**files, "pyproject.toml": "[project]\nname='x'\n", "x.py": ""})
    assert detect_project(root).name == "x"


# -- the config's repo: section ----------------------------------------------------------


def test_the_repo_section_of_factory_yaml(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text("max_fix_rounds: 2\n")
    assert load_factory(path).repo == RepoConfig()
    assert RepoConfig().max_files == 20000 and RepoConfig().max_mb == 200
    assert RepoConfig().cache_path() == Path.home() / ".cache" / "darkfactory" / "envs"
    path.write_text("repo:\n  max_files: 500\n  max_mb: 10\n  cache_dir: envs\n")
    repo = load_factory(path).repo
    assert (repo.max_files, repo.max_mb) == (500, 10)
    assert repo.cache_path() == Path.cwd() / "envs"
    path.write_text("max_fix_rounds: 2\nrepo:\n  max_mb: 10\n  max_files: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_factory(path)
    assert (caught.value.file, caught.value.line, caught.value.key) == (
        str(path),
        4,
        "repo.max_files",
    )
    path.write_text("repo:\n  max_filez: 10\n")
    with pytest.raises(ConfigError, match="unknown key") as caught:
        load_factory(path)
    assert caught.value.key == "repo.max_filez" and caught.value.line == 2
