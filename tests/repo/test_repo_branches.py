"""The branches a repository run delivers against: the one its base names and the
repository's default, resolved when the clone is made, and the pull request's target."""

from __future__ import annotations

from pathlib import Path

from conftest import MakeRepo, git

from darkfactory.config import RepoConfig
from darkfactory.engine.repo_run import MergeTarget, RepoRecord, load_record, merge_target
from darkfactory.repo.source import open_repository


def branches(location: str, base: str | None) -> tuple[str | None, str | None]:
    with open_repository(location, base, limits=RepoConfig()) as source:
        return source.base_branch, source.default_branch


def test_a_master_repository_is_known_as_such(make_repo: MakeRepo) -> None:
    repo = make_repo()
    repo.git("branch", "-m", "main", "master")
    repo.tag("v1")
    repo.branch("topic")
    sha = repo.head()
    assert branches(str(repo.path), None) == ("master", "master")
    assert branches(f"file://{repo.path}", "HEAD") == ("master", "master")
    assert branches(str(repo.path), "topic") == ("topic", "master")
    assert branches(str(repo.path), "refs/heads/topic") == ("topic", "master")
    for not_a_branch in ("v1", sha, sha[:10], "master~0"):
        assert branches(str(repo.path), not_a_branch) == (None, "master"), not_a_branch


def test_the_branch_head_points_to_and_the_remotes_default(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    upstream = make_repo("upstream")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream.path), str(clone))  # origin/HEAD -> main
    git(clone, "switch", "-q", "-c", "topic")
    assert branches(str(clone), None) == ("topic", "main")  # HEAD's branch; origin's default
    assert branches(str(clone), "origin/main") == ("main", "main")
    upstream.git("switch", "-q", "-c", "work")  # no origin: HEAD's branch is the default
    assert branches(str(upstream.path), None) == ("work", "work")
    git(tmp_path, "clone", "-q", "--bare", str(upstream.path), str(tmp_path / "bare.git"))
    assert branches(str(tmp_path / "bare.git"), None) == ("work", "work")


def test_a_detached_head_names_no_branch(make_repo: MakeRepo) -> None:
    repo = make_repo()
    repo.git("checkout", "-q", "--detach")
    assert branches(str(repo.path), None) == (None, None)
    assert branches(str(repo.path), "main") == ("main", None)


def record(**fields: object) -> RepoRecord:
    data = {
        "location": "/src/calc",
        "identity": "/src/calc",
        "base": "v1.0",
        "base_sha": "a" * 40,
        "branch": "darkfactory/x",
        "kind": "bug",
        "project": {},
        **fields,
    }
    return RepoRecord.model_validate(data)


def test_the_pull_request_target() -> None:
    tag = record(default_branch="master")
    assert merge_target(tag, "release") == MergeTarget("release")  # configured: no note
    target = merge_target(tag, None)
    assert target is not None and target.branch == "master"
    assert "v1.0 is not a branch" in target.note and "target_branch" in target.note
    on_branch = record(base="HEAD", base_branch="develop", default_branch="main")
    assert merge_target(on_branch, None) == MergeTarget("develop")
    assert merge_target(record(), None) is None


def test_a_repo_json_written_before_still_loads(tmp_path: Path) -> None:
    old = record().model_dump(exclude={"base_branch", "default_branch"})
    (tmp_path / "repo.json").write_text(RepoRecord.model_validate(old).model_dump_json())
    loaded = load_record(tmp_path)
    assert loaded is not None and (loaded.base_branch, loaded.default_branch) == (None, None)
