"""One pull request per ticket: the hidden ticket marker, found again on any branch and page.

The forges' APIs are the loopback test double (forge_double.py), which checks every request
(the list endpoints' ``state``, ``per_page`` and ``page`` too) and refuses any other.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from forge_double import ForgeDouble

from darkfactory.config import PullRequestConfig
from darkfactory.repo.forge import PullRequest, open_pull_request, ticket_marker

TOKEN = "tok_" + "T1cketT0ken" * 3
TICKET = "ab" * 32
OTHER_TICKET = "cd" * 32
FIRST, SECOND, THIRD = (f"darkfactory/2025010{n}-000000-fix-add-abcd" for n in (1, 2, 3))


@pytest.fixture(params=["github", "gitlab"])
def forge(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[ForgeDouble]:
    monkeypatch.setenv("DF_TEST_FORGE_TOKEN", TOKEN)
    repo = "octo/calc" if request.param == "github" else "group/calc"
    branches = {"main", FIRST, SECOND, THIRD}
    with ForgeDouble(request.param, repo=repo, token=TOKEN, branches=branches) as double:
        yield double
    assert double.violations == []


def open_for(
    double: ForgeDouble, branch: str, ticket: str | None, body: str = "Fix add.\n"
) -> PullRequest:
    config = PullRequestConfig(
        forge=double.forge,  # type: ignore[arg-type]
        repo=double.repo,
        token_env="DF_TEST_FORGE_TOKEN",
        api_url=double.api_url,
    )
    return open_pull_request(
        config, branch=branch, base="main", title="Fix add", body=body, ticket=ticket, timeout=5
    )


def text_of(double: ForgeDouble, seen_body: dict[str, object]) -> str:
    return str(seen_body["body" if double.forge == "github" else "description"])


def test_a_second_run_of_the_same_ticket_gets_the_open_pull_request(forge: ForgeDouble) -> None:
    first = open_for(forge, FIRST, TICKET)
    assert first.created is True
    posted = text_of(forge, forge.posts()[0].body)
    assert posted == f"Fix add.\n\n{ticket_marker(TICKET)}\n"
    assert ticket_marker(TICKET) == f"<!-- darkfactory-ticket: {TICKET} -->"  # hidden on both

    again = open_for(forge, SECOND, TICKET)  # another run: another branch, the same ticket
    assert again == PullRequest(first.number, first.url, first.draft, created=False)
    assert len(forge.posts()) == 1 and len(forge.pulls) == 1

    other = open_for(forge, THIRD, OTHER_TICKET)  # another ticket: its own pull request
    assert other.created is True and other.number != first.number
    lists = [r for r in forge.requests if r.method == "GET"]
    state = "open" if forge.forge == "github" else "opened"
    assert all(r.query == {"state": [state], "per_page": ["100"]} for r in lists)


def test_the_ticket_is_found_on_a_later_page(forge: ForgeDouble) -> None:
    first = open_for(forge, FIRST, TICKET)
    for n in range(150):  # opened after it, by people: the list is newest first
        forge.seed(f"feature-{n}", f"Someone's change {n}.")
    again = open_for(forge, SECOND, TICKET)
    assert (again.number, again.created) == (first.number, False)
    pages = [r.query.get("page") for r in forge.requests if r.method == "GET"][1:]
    assert pages == [None, ["2"]]
    assert len(forge.posts()) == 1


def test_a_pull_request_without_the_marker_is_not_the_tickets(forge: ForgeDouble) -> None:
    forge.seed("feature-x", f"Mentions darkfactory-ticket {TICKET} but not as the marker.")
    opened = open_for(forge, FIRST, TICKET)
    assert opened.created is True and len(forge.pulls) == 2


def test_the_marker_on_a_branch_no_run_pushed_is_not_the_tickets(forge: ForgeDouble) -> None:
    # Anyone can copy the marker into a pull request of their own: it does not take the
    # ticket's place unless its branch is one a run pushed.
    forge.seed("feature-x", f"Copied.\n\n{ticket_marker(TICKET)}\n")
    opened = open_for(forge, FIRST, TICKET)
    assert opened.created is True and len(forge.pulls) == 2


def test_the_marker_survives_a_body_cut_to_the_forges_limit(forge: ForgeDouble) -> None:
    open_for(forge, FIRST, TICKET, body="x" * 1_100_000)
    sent = text_of(forge, forge.posts()[0].body)
    limit = 65_000 if forge.forge == "github" else 1_000_000
    assert len(sent) <= limit
    assert sent.endswith(f"in the run directory.)*\n\n{ticket_marker(TICKET)}\n")
    assert open_for(forge, SECOND, TICKET).created is False


def test_a_ticket_that_is_not_a_sha256_is_refused() -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        ticket_marker("abc --> <script>")
