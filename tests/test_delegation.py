"""A manager's delegations without a crew: names matched to roles, arguments mended
(crews/delegation.py), the per-phase limit (engine/delegation.py), and the texts the
manager reads, from crews/prompts.json (crews/texts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from darkfactory.crews import texts
from darkfactory.crews.delegation import MAX_FIELD_CHARS, MAX_NAME_CHARS, match_coworker, mend
from darkfactory.crews.prompts import overrides
from darkfactory.engine.delegation import SAY, DelegationGuard
from darkfactory.errors import ConfigError
from darkfactory.reporting.trace import ASK_TOOL, DELEGATE_TOOL

#: config/agents.yaml's coworkers: role text -> role key.
ROLES = {
    "Software Architect": "architect",
    "Software Developer": "developer",
    "QA Engineer": "qa_engineer",
    "Technical Writer": "tech_writer",
}


# -- names: shortened, loose, other case ------------------------------------------------
@pytest.mark.parametrize(
    ("given", "role"),
    [
        ("dev", "Software Developer"),
        ("Dev.", "Software Developer"),
        ("Software Dev", "Software Developer"),
        ("Sr. Developer", "Software Developer"),
        ("Lead Developer", "Software Developer"),
        ("developer", "Software Developer"),  # the role key
        ("software-developer", "Software Developer"),
        ("arch", "Software Architect"),
        ("The Architect", "Software Architect"),
        ("SOFTWARE ARCHITECT", "Software Architect"),
        ("QA", "QA Engineer"),  # two letters: a whole word only
        ("qa eng", "QA Engineer"),
        ("engineer", "QA Engineer"),
        ("qa_engineer", "QA Engineer"),
        ("tech", "Technical Writer"),
        ("tech writer", "Technical Writer"),
        ("techn writ", "Technical Writer"),
        ("Writer", "Technical Writer"),
    ],
)
def test_a_shortened_or_loose_name_matches_its_one_role(given: str, role: str) -> None:
    assert match_coworker(given, ROLES) == [role]


@pytest.mark.parametrize(
    ("given", "roles"),
    [
        ("Software", ["Software Architect", "Software Developer"]),
        ("soft", ["Software Architect", "Software Developer"]),
        ("de", []),  # under three letters, a prefix is no match
        ("tester", []),
        ("docs writer", []),  # every telling word must fit
        ("Senior Software Engineer", []),
        ("Senior", []),  # nothing telling left
        ("", []),
    ],
)
def test_a_name_that_fits_no_role_or_several_is_not_guessed(given: str, roles: list[str]) -> None:
    assert match_coworker(given, ROLES) == roles


def test_an_exact_name_wins_over_a_longer_role_it_begins() -> None:
    roles = {"Developer": "developer", "Developer Advocate": "advocate"}
    assert match_coworker("developer", roles) == ["Developer"]
    assert match_coworker("dev", roles) == ["Developer", "Developer Advocate"]


def test_only_the_first_characters_of_a_name_are_read() -> None:
    assert match_coworker("dev" + " x" * MAX_NAME_CHARS, ROLES) == []
    assert match_coworker("developer" + " " * MAX_NAME_CHARS + "qa", ROLES) == [
        "Software Developer"
    ]


# -- arguments: objects for text, other field names -------------------------------------
def test_objects_lists_and_other_names_are_mended_to_text() -> None:
    args: dict[str, Any] = {
        "description": {"description": "Write DESIGN.md.", "type": "str"},
        "details": ["The spec", "asks for a module."],
        "agent": ["Software Architect"],
    }
    fixed = mend(args, "task")
    assert args == {
        "task": "Write DESIGN.md.",
        "context": "The spec\nasks for a module.",
        "coworker": "Software Architect",
    }
    assert fixed == [
        "agent -> coworker",
        "description -> task",
        "details -> context",
        "task: dict -> text",
        "context: list -> text",
    ]


def test_a_question_is_mended_and_text_is_bounded() -> None:
    args: dict[str, Any] = {"query": "q" * (MAX_FIELD_CHARS + 10), "coworker": {"role": "dev"}}
    fixed = mend(args, "question")
    assert len(args["question"]) == MAX_FIELD_CHARS and args["context"] == ""
    assert args["coworker"] == '{"role": "dev"}'  # no text field: its JSON, not a guess
    assert fixed == ["query -> question", "coworker: dict -> text"]


# -- the limit per phase ------------------------------------------------------------------
def _delegate(guard: DelegationGuard, n: int, tool: str = DELEGATE_TOOL) -> str | None:
    field = "question" if tool == ASK_TOOL else "task"
    return guard.review(tool, {"coworker": "dev", field: f"Part {n}.", "context": ""})


def test_the_last_delegation_is_refused_unrun_and_one_more_is_stuck() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    guard = DelegationGuard(
        phase="implement", roles=ROLES, limit=3, emit=lambda kind, **data: seen.append((kind, data))
    )
    assert _delegate(guard, 1) is None
    assert _delegate(guard, 2, ASK_TOOL) is None  # a question counts too
    last = _delegate(guard, 3)
    assert last == SAY["limit_reached"].format(limit=3)
    assert "give your final answer now" in last.lower() and guard.stuck is None
    assert guard.delegated == 1  # questions and refused delegations reach no one
    assert _delegate(guard, 4) == "Stopped: more than 3 delegations in this phase."
    assert guard.stuck is not None and "delegated 4 times in phase implement" in str(guard.stuck)
    assert [k for k, _ in seen] == [
        "delegation_normalised",
        "delegation_normalised",
        "delegation_refused",
        "delegation_stuck",
    ]
    assert seen[2][1] == {
        "mode": "delegate",
        "reason": "limit_reached",
        "coworker": "dev",
        "attempt": 3,
    }


# -- the texts the manager and the agents read: crews/prompts.json -----------------------
def test_the_texts_are_read_from_prompts_json_and_kept_from_crewais_kinds() -> None:
    data = texts.prompt_file()
    assert dict(SAY) == data[texts.OURS]["delegation"]
    assert set(data[texts.OURS]) == {"protocol", "native", "delegation", "previous_work"}
    assert texts.OURS not in overrides()  # lean_prompts() puts CrewAI's kinds only


def test_a_missing_text_names_the_file_the_key_and_what_is_needed() -> None:
    data = {texts.OURS: {"delegation": {"repeated": "Refused."}}}
    with pytest.raises(ConfigError) as err:
        texts.pick(data, "delegation", ("repeated", "stopped"), file=Path("p.json"))
    assert err.value.file == "p.json" and err.value.key == "darkfactory.delegation"
    assert "no text for stopped" in str(err.value)
    assert "needs a text for each of: repeated, stopped" in str(err.value)
    with pytest.raises(ConfigError, match="no text for repeated"):
        texts.pick({}, "delegation", ("repeated",), file=texts.PROMPT_FILE)
