"""The three config files, validated into pydantic models at load time.

A config directory holds ``agents.yaml`` (the crew's roles), ``tasks.yaml`` (what the flow
asks the crew to do in each phase) and ``factory.yaml`` (pipeline settings). The default
is the ``config/`` of the project the working directory is in (``darkfactory.project``),
else the one packaged with Dark Factory.

Every problem is a ``ConfigError`` naming the file, the key path and the line. The
``Field(description=...)`` texts are user documentation: the configuration reference is
generated from them.
"""

from __future__ import annotations

import difflib
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

import darkfactory.tools as tool_registry
from darkfactory import project
from darkfactory.errors import ConfigError
from darkfactory.sandbox.base import Limits
from darkfactory.sandbox.image import DEFAULT_IMAGE
from darkfactory.yamlio import KeyPath, Locations, load_yaml, pydantic_errors

AGENTS_FILE = "agents.yaml"
TASKS_FILE = "tasks.yaml"
FACTORY_FILE = "factory.yaml"

#: Roles the pipeline relies on; agents.yaml may define more.
REQUIRED_ROLES = ("manager", "architect", "developer", "qa_engineer", "tech_writer")
#: The role key of the hierarchical crew's manager.
MANAGER = "manager"
#: Tasks the pipeline runs; tasks.yaml may define more.
REQUIRED_TASKS = ("design", "implement", "verify", "fix", "document", "document_fix")
#: The placeholders the pipeline fills in task descriptions and expected outputs, and what
#: each holds (``engine.environment.prompt_inputs`` and the flow's phases fill them).
PLACEHOLDERS: dict[str, str] = {
    "title": "The spec's title.",
    "summary": "The spec's summary (a ticket's description); the title if it has none.",
    "requirements": "The requirements, one per line: `- R1: text`.",
    "acceptance_tests": (
        "The acceptance test files in `acceptance/` with their code (only their names when "
        "together they are longer than 8000 characters), or a note that there are none yet."
    ),
    "workspace_files": "Every file of the workspace with its size, one per line.",
    "design": "The text of `DESIGN.md` (its first 8000 characters), or `(no DESIGN.md yet)`.",
    "failures": (
        "In the fix task: the failing acceptance and unit tests with their messages, as "
        "the verify phase measured them (at most 6000 characters). Empty elsewhere."
    ),
    "failure_class": (
        "Fix task only: the classes of the failures the verify round found, comma-separated "
        "(e.g. `assertion` or `syntax_import, assertion`; see How it works)."
    ),
    "route": (
        "Fix task only: the role text of the coworker the pipeline routes the fix to, e.g. "
        "`Software Developer`."
    ),
    "feedback": (
        "What a person said at the last checkpoint: the reason for a rejection, or the notes "
        "with an approval. Empty when nobody said anything."
    ),
    "fix_round": "In the fix task: the current fix round, from 1. `0` elsewhere.",
    "previous_work": (
        "Fix task only: what the crew's answers since the last fix task really did, as the "
        "pipeline measured it (per phase: the files changed, how often tests ran, the start "
        "of its answer), and which answer changed nothing. Empty elsewhere."
    ),
    "max_fix_rounds": "`max_fix_rounds` from `factory.yaml`.",
    "docs_failures": (
        "Docs fix task only: what the last docs check found, verbatim: the warnings and "
        "errors of `mkdocs build --strict` and each failing example with its output (at most "
        "6000 characters). Empty elsewhere."
    ),
    "docs_round": "In the docs fix task: the current docs fix round, from 1. `0` elsewhere.",
    "baseline": (
        "For a ticket on a repository: its tests' results at the base commit (counts, and "
        "the tests that already failed there). Empty for a new project."
    ),
    "reproduction": (
        "For a bug on a repository: the reproduction tests (their paths and names) and how "
        "they failed at the base commit. Empty otherwise."
    ),
    "checks": (
        "For a tests, docs or migrate ticket on a repository: what the pipeline will measure "
        "besides the tests (production code untouched, the coverage rise, the API reference, "
        "the migration's patterns, imports and warnings), one per line. Empty otherwise."
    ),
}

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentConfig(_Strict):
    """One role of the crew (a top-level key of ``agents.yaml``)."""

    role: Text = Field(
        description=(
            "The role's name, e.g. `Software Developer`. The manager delegates to a coworker "
            "by this exact name, so every role's name must be different."
        )
    )
    goal: Text = Field(description="What the role is trying to achieve; part of its prompt.")
    backstory: Text = Field(
        description=(
            "Who the role is and how it works: habits, rules, what it must never do. "
            "Part of its prompt."
        )
    )
    tools: list[str] = Field(
        default_factory=list,
        description=(
            "Tools the role may use, by module name in `tools/` (e.g. `read_file`). "
            "The manager must have none: it delegates instead."
        ),
    )
    llm: str | None = Field(
        default=None,
        description=(
            "Model for this role only, as CrewAI names it (e.g. `openai/gpt-4o`). "
            "Unset: the run's model."
        ),
    )
    max_iter: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Most reasoning/tool-use steps the role may take on one task before it must "
            "answer. Unset: CrewAI's default."
        ),
    )
    verbose: bool = Field(
        default=False, description="Print the role's reasoning and tool calls to the console."
    )
    # -- CrewAI Agent keys passed on as they are (REFUSED_AGENT_KEYS says why the others are not)
    max_rpm: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Most model calls this role may start in one minute; at the limit CrewAI waits a "
            "minute (the wait counts in `budget.max_wall_s`). Unset: no limit."
        ),
    )
    respect_context_window: bool = Field(
        default=True,
        description=(
            "When the conversation outgrows the model's context window: summarize it and go "
            "on (`true`), or stop the role with an error (`false`)."
        ),
    )
    use_better_compaction: bool = Field(
        default=True,
        description=(
            "A tool result too large for the context window: kept out of the conversation "
            "for the role to read in parts (`true`), or put in whole (`false`)."
        ),
    )
    planning: bool = Field(
        default=False,
        description=(
            "Before each task the role writes a plan and works through it step by step "
            "(CrewAI's `planning` at low effort: no model call to check each step). Its "
            "model calls count in the budget."
        ),
    )
    reasoning: bool = Field(
        default=False,
        description=(
            "CrewAI's older name for planning (deprecated there), with more model calls: "
            "the role refines its plan until it is ready (at most `max_reasoning_attempts` "
            "times) and checks it after each step. Every call counts in the budget."
        ),
    )
    max_reasoning_attempts: int | None = Field(
        default=None,
        gt=0,
        description=(
            "With `reasoning: true`: most times the role refines its plan. Unset: until the "
            "model says it is ready, bounded only by the budget."
        ),
    )
    function_calling_llm: str | None = Field(
        default=None,
        description=(
            "A second model for this role that rewrites a tool call CrewAI could not read "
            "into a valid one; only a model without native tool calling writes them as text. "
            "Named like `llm:`, priced and budgeted like it; `--model` (so `rehearse` too) "
            "drops it, one model then playing every part. CrewAI marks it deprecated. Unset: "
            "an unreadable tool call goes back to the role's model as an error."
        ),
    )
    allow_delegation: bool | None = Field(
        default=None,
        description=(
            "`true` on the manager, `false` on every other role, as Dark Factory sets it "
            "anyway; the opposite is refused (only the manager delegates). Accepted so that "
            "a CrewAI `agents.yaml` saying so loads unchanged."
        ),
    )
    use_system_prompt: bool = Field(
        default=True,
        description=(
            "Send the role's instructions as a system message (`true`), or inside the user "
            "message (`false`) for a model that takes no system message."
        ),
    )

    @field_validator("tools", mode="before")
    @classmethod
    def _no_tools(cls, value: Any) -> Any:
        return [] if value is None else value


class TaskConfig(_Strict):
    """One task (a top-level key of ``tasks.yaml``); the manager chooses who does it."""

    description: Text = Field(
        description=(
            "What to do. May use the placeholders "
            + ", ".join(f"`{{{name}}}`" for name in PLACEHOLDERS)
            + "; write `{{` and `}}` for literal braces."
        )
    )
    expected_output: Text = Field(
        description="What the answer must contain. Same placeholders as `description`."
    )


@dataclass(frozen=True)
class Refusal:
    """Why ``agents.yaml`` or ``tasks.yaml`` refuses a key of CrewAI's, and what to do instead."""

    why: str
    instead: str = ""


_INTERNAL = Refusal(
    "CrewAI sets it itself while it runs, or it takes a Python object that a YAML file cannot hold"
)
_CALLBACK = Refusal(
    "it takes a Python function, which a YAML file cannot hold; the run's trace records "
    "every step and tool call",
    "read the run's trace.jsonl",
)
_TOOL_FAILURE = Refusal(
    "a failed tool call goes back to the role as text, so that it can fix the call, and "
    "the trace records it; `raise` would end the phase at the first one, `ignore` hide it"
)
_KNOWLEDGE = Refusal(
    "knowledge is read from host files into a vector store through an embedding model: "
    "outside the sandbox, the run's models and its budget",
    "put what the roles must know in the spec, or in the workspace, where they read it "
    "with their tools",
)
_CODE_EXECUTION = Refusal(
    "CrewAI removed the code interpreter it turned on (its sandbox was escaped)",
    "generated code runs in Dark Factory's sandbox, through the run_command and run_tests tools",
)
_TEMPLATE = Refusal(
    "a template replaces the system and user messages CrewAI builds around the role's "
    "prompt (its tools, the answer format) with one text, for models without a chat "
    "format; Dark Factory reaches every model through a chat API",
    "shape the role's prompt with goal and backstory, and the tasks' in tasks.yaml",
)
_DATE = Refusal(
    "it puts today's date into every prompt, so a run recorded with --record no longer "
    "replays on another day (a replay stops at the first request that differs)",
    "write a date the work depends on into the spec",
)
_AGENT_GUARDRAIL = Refusal(
    "an agent's guardrail checks only Agent.kickoff(), which a crew never calls: it would "
    "do nothing",
    "the pipeline checks each phase itself: the tests, the docs check, the checkpoints",
)

#: The keys of CrewAI's ``Agent`` that ``agents.yaml`` refuses, and why. Every other Agent
#: key is an ``AgentConfig`` field and is passed on (tests/test_crewai_keys.py checks both
#: against the installed CrewAI); a key that is neither is a typo.
REFUSED_AGENT_KEYS: dict[str, Refusal] = {
    "max_execution_time": Refusal(
        "CrewAI does not stop a role at that time: it waits for the role to finish, then "
        "throws its work away as timed out",
        "bound a run's time with budget.max_wall_s in factory.yaml (checked before every "
        "model call), and a command's with sandbox.timeout_s",
    ),
    "max_retry_limit": Refusal(
        "Dark Factory sets it to 1: a failed model call is retried by the model guard, and "
        "work that fails its tests goes back to the crew in fix rounds",
        "set llm.max_retries or max_fix_rounds in factory.yaml",
    ),
    "max_tokens": Refusal(
        "CrewAI 1.15 does not read it: it limits nothing",
        "limit a run's tokens with budget.max_tokens in factory.yaml",
    ),
    "cache": Refusal(
        "a cached tool answers a repeated call with its first result although the "
        "workspace changed in between: run_tests after an edit would report the old run",
        "tool results are never cached here",
    ),
    "memory": Refusal(
        "CrewAI's memory is kept on the host from run to run, so a run would recall what "
        "runs of other specs left there, through an embedding model outside the run's "
        "models and budget",
        "put what a role must know in its backstory or in the spec",
    ),
    **dict.fromkeys(
        ("knowledge", "knowledge_sources", "knowledge_storage", "knowledge_config", "embedder"),
        _KNOWLEDGE,
    ),
    "apps": Refusal(
        "CrewAI AMP apps act through your CrewAI account over the network, outside the sandbox",
        "write a tool in tools/ (Extending with a custom tool)",
    ),
    "mcps": Refusal(
        "MCP tools run on the host or on remote servers, outside the sandbox and with the "
        "host's network",
        "write a tool in tools/ that does the one thing the role needs",
    ),
    "a2a": Refusal(
        "it sends work to remote agents: outside the sandbox, the budget and the trace",
        "add the role to agents.yaml",
    ),
    "skills": Refusal(
        "skills come into the prompt from host folders or a registry (scripts included), "
        "not from the config directory that is validated and copied into each run",
        "write the instructions into the role's backstory",
    ),
    "from_repository": Refusal(
        "it loads the role from CrewAI AMP's agent repository over the network, so the "
        "config directory would no longer define the run",
        "write the role's keys here",
    ),
    "allow_code_execution": _CODE_EXECUTION,
    "code_execution_mode": _CODE_EXECUTION,
    "multimodal": Refusal(
        "CrewAI deprecated it (models take files natively now)",
        "the roles read the workspace with their tools",
    ),
    "planning_config": Refusal(
        "it may name a planning model of its own, outside the run's models, prices and budget",
        "use planning: true, or reasoning: true with max_reasoning_attempts",
    ),
    "guardrail": _AGENT_GUARDRAIL,
    "guardrail_max_retries": _AGENT_GUARDRAIL,
    "step_callback": _CALLBACK,
    "callbacks": _CALLBACK,
    "system_template": _TEMPLATE,
    "prompt_template": _TEMPLATE,
    "response_template": _TEMPLATE,
    "inject_date": _DATE,
    "date_format": _DATE,
    "tool_failure_policy": _TOOL_FAILURE,
    "checkpoint": Refusal(
        "Dark Factory saves the run after every step itself",
        "continue a stopped run with darkfactory resume RUN_ID",
    ),
    **dict.fromkeys(
        (
            "entity_type",
            "id",
            "config",
            "agent_executor",
            "executor_class",
            "i18n",
            "crew",
            "cache_handler",
            "tools_handler",
            "tools_results",
            "security_config",
            "adapted_agent",
            "execution_context",
            "checkpoint_kickoff_event_id",
            "agent_knowledge_context",
            "crew_knowledge_context",
            "knowledge_search_query",
        ),
        _INTERNAL,
    ),
}

_ANSWER_UNREAD = (
    "the pipeline does not read a task's answer: a phase's result is what it leaves in the "
    "workspace, which the pipeline tests and checks itself"
)
_ANSWER_FORMAT = Refusal(
    _ANSWER_UNREAD + " (and it takes a Python class)",
    "say in description and expected_output which files to write",
)
_OUTPUT_FILE = Refusal(
    "it writes the model's answer to a path on the host, outside the sandbox and the run "
    "directory (making the folders it names), and " + _ANSWER_UNREAD,
    "to keep every model exchange, run with --record FILE",
)
_TASK_GUARDRAIL = Refusal(
    "a guardrail judges the task's answer text, which the pipeline does not read; it "
    "checks each phase itself by running the tests and the docs check, and sends the "
    "failures back to the crew in fix rounds",
    "write what must hold as a requirement of the spec, proved by its acceptance tests",
)

#: The keys of CrewAI's ``Task`` that ``tasks.yaml`` refuses, and why; the others are
#: ``TaskConfig`` fields. A key that is neither is a typo.
REFUSED_TASK_KEYS: dict[str, Refusal] = {
    "agent": Refusal(
        "in a hierarchical crew a task with an agent restricts the manager to that one "
        "agent; the manager chooses who does each task"
    ),
    "tools": Refusal(
        "task tools are handed to the manager too, and a hierarchical manager may not have tools",
        "give tools to roles in agents.yaml",
    ),
    "name": Refusal("a task's name is its key in tasks.yaml, by which the pipeline runs it"),
    "context": Refusal(
        "each phase runs a crew of its own with this one task, so there is no earlier task "
        "whose answer it could read; what earlier phases made reaches a task through the "
        "workspace and the placeholders",
        "use {design}, {failures}, {workspace_files} and the other placeholders",
    ),
    "async_execution": Refusal(
        "each phase's crew runs one task and the phases run one after another: there is "
        "nothing to run it alongside"
    ),
    **dict.fromkeys(
        ("output_json", "output_pydantic", "response_model", "converter_cls"), _ANSWER_FORMAT
    ),
    "markdown": Refusal(_ANSWER_UNREAD),
    "output_file": _OUTPUT_FILE,
    "create_directory": _OUTPUT_FILE,
    "human_input": Refusal(
        "it stops the phase at a prompt on the terminal for a person to review the answer, "
        "which hangs a run that has no terminal; a person approves a run at the pipeline's "
        "checkpoints, which pause it until darkfactory approve",
        "set checkpoints.output_review: ask (or spec_approval) in factory.yaml",
    ),
    "callback": _CALLBACK,
    **dict.fromkeys(
        ("guardrail", "guardrails", "guardrail_max_retries", "max_retries"), _TASK_GUARDRAIL
    ),
    "input_files": Refusal(
        "it reads files from the host into the prompt, outside the sandbox",
        "put what the roles need in the spec, or in the workspace",
    ),
    "tool_failure_policy": _TOOL_FAILURE,
    "allow_crewai_trigger_context": Refusal(
        "it is for crews that a CrewAI AMP trigger starts; Dark Factory starts each crew itself"
    ),
    **dict.fromkeys(
        (
            "id",
            "config",
            "output",
            "prompt_context",
            "security_config",
            "used_tools",
            "tools_errors",
            "delegations",
            "processed_by_agents",
            "retry_count",
            "start_time",
            "end_time",
            "checkpoint_original_description",
            "checkpoint_original_expected_output",
        ),
        _INTERNAL,
    ),
}


class SandboxConfig(_Strict):
    """Where generated code and tests run, and the limits on every command."""

    backend: Literal["auto", "bwrap", "local", "docker"] = Field(
        default="auto",
        description=(
            "`docker` (a container), `bwrap` (bubblewrap namespaces), `local` (a plain "
            "subprocess with resource limits: no isolation, only use it for code you trust) "
            "or `auto` (docker if an engine and the image are available, else bwrap; "
            "never local)."
        ),
    )
    timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds a single command may run before it is killed."
    )
    memory_mb: int = Field(
        default=1024,
        gt=0,
        description=(
            "Memory limit of a command, in MB (docker: of the sandbox's container, its `/tmp` "
            "included; swap is never used)."
        ),
    )
    cpu_s: int = Field(default=300, gt=0, description="CPU time limit of a command, in seconds.")
    pids: int = Field(
        default=256, gt=0, description="Most processes and threads a command may run at once."
    )
    output_bytes: int = Field(
        default=1_000_000,
        gt=0,
        description="Output of a command kept per stream (stdout, stderr); the rest is cut off.",
    )
    file_size_mb: int = Field(
        default=256, gt=0, description="Largest file a command may write, in MB."
    )
    disk_mb: int = Field(
        default=1024,
        gt=0,
        description=(
            "Most the workspace (and the read-write mounts: test reports, installed "
            "dependencies) may hold, in MB: measured while a command runs, which is killed "
            "when it grows them past this."
        ),
    )
    cpus: float = Field(
        default=1.0,
        gt=0,
        description=(
            "CPUs the sandbox may use at once (docker's CPU quota, e.g. `1.5`); bwrap and "
            "local do not limit it."
        ),
    )
    image: str = Field(
        default=DEFAULT_IMAGE,
        min_length=1,
        description=(
            "The docker backend's image; it needs `python3` with pip and pytest. Build the "
            "default one offline with `darkfactory sandbox build-image` (Debian's "
            "debootstrap); `examples/docker/Dockerfile` builds one from `python:3.11-slim`."
        ),
    )
    deps_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds pip may take to download the generated project's dependencies "
            "(requirements.txt or pyproject.toml) as wheels on the host, and again to "
            "install them in the sandbox from those wheels, without a network."
        ),
    )

    def limits(self) -> Limits:
        """These settings as the sandbox's ``Limits``."""
        return Limits(
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            cpu_s=self.cpu_s,
            pids=self.pids,
            output_bytes=self.output_bytes,
            file_size_mb=self.file_size_mb,
            disk_mb=self.disk_mb,
            cpus=self.cpus,
        )


class TestsConfig(_Strict):
    """How the pipeline runs the tests in the verify phase."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds one run of the test suite may take before it is killed.",
    )


class BudgetConfig(_Strict):
    """Spending limits of one run."""

    max_llm_calls: int = Field(
        default=300,
        gt=0,
        description=(
            "Most model calls one run may make, all roles together, retries and unparseable "
            "answers included; checked before every call. When the next call would exceed it "
            "the run stops with status budget_exhausted (exit code 4), its state saved."
        ),
    )
    max_tokens: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Most tokens (prompt + completion, as the provider reports them; estimates for "
            "the scripted model) one run may use. Checked before every call: once the run "
            "has used this many, it stops with exit code 4. Unset: no token limit."
        ),
    )
    max_wall_s: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Most wall-clock seconds one run may take, resumed runs counting their earlier "
            "time too. Checked before every model call; exit code 4 when past. Unset: no limit."
        ),
    )

    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Most US dollars one run may spend on model calls, priced from this file's "
            "`prices:` or else the genai-prices table. Checked before every call: once the run "
            "has spent this much it stops with exit code 4. A run with this limit refuses "
            "to start (exit code 2) while a role's model has no known price. Unset: no limit."
        ),
    )


class PriceConfig(_Strict):
    """A model's price, USD per million tokens."""

    input: float = Field(ge=0, description="USD per million prompt tokens.")
    output: float = Field(ge=0, description="USD per million completion tokens.")


class CheckpointsConfig(_Strict):
    """Where a person approves the run: `auto` goes on, `ask` asks."""

    spec_approval: Literal["auto", "ask"] = Field(
        default="auto",
        description=(
            "After intake, before any model is called: a person approves the requirements "
            "read from the spec. `--reason` with the approval reaches the design task as "
            "reviewer feedback; a rejection ends the run (status `rejected`)."
        ),
    )
    output_review: Literal["auto", "ask"] = Field(
        default="auto",
        description=(
            "After the tests and the docs check pass, before delivery: a person reviews the "
            "workspace. A rejection's reason goes back to the crew as reviewer feedback (a "
            "revision round), then tests and docs are checked and the review is asked again."
        ),
    )
    deploy_approval: Literal["auto", "ask"] = Field(
        default="ask",
        description=(
            "Before `deploy.command` runs (only when one is configured). A rejection "
            "sends the work back like an output review's. `darkfactory run --yes` does not "
            "answer this one: with `ask` it is asked (or the run pauses) even then; only "
            "`auto` here deploys without a person."
        ),
    )


def _variable_name(name: str) -> str:
    """``name`` if it names an environment variable (a POSIX portable name)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(
            f"{name!r} is not an environment variable name: list names only (letters, "
            "digits and _, not starting with a digit), e.g. [TWINE_PASSWORD], and set "
            "their values in the environment"
        )
    return name


#: One entry of ``deploy.env``.
VariableName = Annotated[str, AfterValidator(_variable_name)]


class DeployConfig(_Strict):
    """The command that ships a delivered run, if any."""

    command: list[Text] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Argument list run after the deploy approval, on the host (not in the sandbox: "
            "it is your command, with your network), without a shell, e.g. "
            "`[rsync, -a, ./, deploy@host:/srv/app/]`. It runs in a new temporary directory "
            "holding the files of the delivered commit (tracked files only, removed "
            "afterwards), never in the workspace, with `PYTHONSAFEPATH=1` and only `PATH`, "
            "`HOME`, `LANG`, `LC_*` and the variables named in `deploy.env`. Its output is "
            "kept in the trace with secrets redacted. A non-zero exit fails the run. Unset: "
            "nothing is deployed."
        ),
    )
    env: list[VariableName] = Field(
        default_factory=list,
        description=(
            "Names of the environment variables the deploy command gets besides `PATH`, "
            "`HOME`, `LANG` and `LC_*`, e.g. `[TWINE_USERNAME, TWINE_PASSWORD]` (names "
            "only; each is passed when it is set). Their values are redacted from the "
            "output kept in the trace."
        ),
    )
    timeout_s: float = Field(
        default=600.0, gt=0, description="Seconds the deploy command may take before it is killed."
    )


class LLMConfig(_Strict):
    """How every model call reaches the provider: its timeout and its retries."""

    timeout_s: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds one model call may take before it is given up as timed out (and "
            "retried), so a provider that hangs cannot hang a run. Local models on a CPU "
            "can need minutes for a long prompt."
        ),
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description=(
            "How many times a failed model call is tried again: after HTTP 408, 409, 425, "
            "429 or 5xx, a timeout, a dropped or cut-off connection, a malformed body or an "
            "empty answer (never after other errors, such as a wrong key or model name). "
            "Each retry is an `llm_retry` trace event and counts as a call against "
            "`budget.max_llm_calls`. When the retries run out the run fails: model "
            "provider unreachable after N retries."
        ),
    )
    retry_backoff_s: float = Field(
        default=2.0,
        ge=0,
        description=(
            "Seconds before the first retry, doubled before each further one (at most "
            "`retry_max_wait_s`). A provider's `Retry-After` header takes precedence."
        ),
    )
    retry_max_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="Longest wait before one retry, a `Retry-After` header's included.",
    )
    check_model: bool = Field(
        default=True,
        description=(
            "Before a run (and with `validate --model`), ask each provider whether it has "
            "the model names the run uses: its model list (`GET /models` of an "
            "OpenAI-compatible API) or its model lookup (Anthropic, Gemini). A name it does "
            "not have stops the command with exit code 2 and the closest names it lists. "
            "Set to `false` for a server that answers to any name without listing it."
        ),
    )
    read_file_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description=(
            "Most of a role's model context window (as CrewAI reports it, in tokens "
            "estimated at 4 characters each) one `read_file` answer may fill. A larger file "
            "is shown in ranges: the answer ends with a notice naming the `start_line` that "
            "reads on."
        ),
    )
    max_prompt_tokens: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Most tokens (estimated at 4 characters each) one prompt may hold; unset: the "
            "model's context window. Before each call a larger prompt is cut: the oldest tool "
            "outputs first, then older turns, then the newest tool output is shortened; the "
            "system prompt and the task are never cut. A `prompt_cut` trace event says so. "
            "A prompt still too large is refused (`prompt_refused`) and the run fails."
        ),
    )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
DEFAULT_API_URL = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
#: The user name that goes with a token in git's Basic auth, by forge.
TOKEN_USER = {"github": "x-access-token", "gitlab": "oauth2"}


def _api_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(f"{url!r}: give the API's address only, no credentials or query")
        return url.rstrip("/")
    raise ValueError(f"{url!r} is not an https:// URL (the token must not travel in clear)")


ApiUrl = Annotated[str, AfterValidator(_api_url)]


class PullRequestConfig(_Strict):
    """The draft pull request (GitHub) or merge request (GitLab) a delivered run opens."""

    forge: Literal["github", "gitlab"] = Field(
        description="Where the repository is hosted: `github` (or GitHub Enterprise) or `gitlab`."
    )
    repo: str = Field(
        min_length=1,
        description=(
            "The repository on the forge: `owner/name` on GitHub; on GitLab the project's "
            "numeric id or its path, e.g. `group/subgroup/name`."
        ),
    )
    token_env: VariableName = Field(
        description=(
            "Name of the environment variable that holds the API token (the name, never the "
            "token), e.g. `GITHUB_TOKEN`. GitHub: a fine-grained token with `Pull requests: "
            "write` (and `Contents: write` to push), or a classic token with `repo`. GitLab: "
            "a token with the `api` scope and at least the Developer role."
        )
    )
    api_url: ApiUrl | None = Field(
        default=None,
        description=(
            "The REST API's root, for GitHub Enterprise (`https://HOST/api/v3`) or a "
            "self-managed GitLab (`https://HOST/api/v4`). Unset: `https://api.github.com` or "
            "`https://gitlab.com/api/v4`. Must be https."
        ),
    )
    draft: bool = Field(
        default=True,
        description=(
            "Open it as a draft (GitLab: the title starts with `Draft: `). A person marks it "
            "ready after reading it."
        ),
    )
    target_branch: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The branch it asks to merge into. Unset: the branch the ticket's base names, or "
            "(a tag or a commit) the repository's default branch; a run with neither is "
            "refused before it starts."
        ),
    )

    @model_validator(mode="after")
    def _repo_fits_the_forge(self) -> PullRequestConfig:
        if self.forge == "github" and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.repo):
            raise ValueError(f"repo {self.repo!r}: on GitHub give `owner/name`")
        if self.forge == "gitlab" and not re.fullmatch(r"\d+|[\w.-]+(/[\w.-]+)+", self.repo):
            raise ValueError(
                f"repo {self.repo!r}: on GitLab give the project's id or its path `group/name`"
            )
        return self

    def api_root(self) -> str:
        return self.api_url or DEFAULT_API_URL[self.forge]


class DeliverConfig(_Strict):
    """Where a run on an existing repository delivers its branch, beside its run directory."""

    push: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Push the run's branch `darkfactory/<run-id>` here: an `https://` URL, a "
            "`file://` URL or an absolute path to a repository, or the name of a remote of "
            "the run's clone. Never forced, never to the base branch or the remote's default "
            "branch. Unset: nothing is pushed; the branch stays in `runs/<id>/workspace` and "
            "the change in `runs/<id>/change.patch`."
        ),
    )
    push_failed: bool = Field(
        default=False,
        description=(
            "Also push a run that did not deliver (failed, escalated, rejected, out of "
            "budget), to `darkfactory/<run-id>-failed`, for a person to look at. No pull "
            "request is opened for it."
        ),
    )
    push_token_env: VariableName | None = Field(
        default=None,
        description=(
            "Name of the environment variable holding the token for an `https://` push "
            "(sent as an HTTP header, never in a URL or on a command line). Unset: "
            "`pull_request.token_env` when a pull request is configured, else no token."
        ),
    )
    pull_request: PullRequestConfig | None = Field(
        default=None,
        description=(
            "Open a draft pull request for a delivered run, with `pull_request.md` as its "
            "text; an open one for the same ticket (a fingerprint of the ticket and the "
            "repository in its text) or the same branch is reused, never duplicated. Needs "
            "`push`."
        ),
    )

    @model_validator(mode="after")
    def _pull_request_needs_push(self) -> DeliverConfig:
        if self.pull_request is not None and self.push is None:
            raise ValueError(
                "pull_request needs push: the branch must be on the forge before a pull "
                "request can ask to merge it (set deliver.push to the repository's https URL)"
            )
        return self

    def push_token(self) -> tuple[str | None, str]:
        """The environment variable naming the push token (or None) and its Basic-auth user."""
        forge = self.pull_request.forge if self.pull_request else "github"
        env = self.push_token_env or (self.pull_request.token_env if self.pull_request else None)
        return env, TOKEN_USER[forge]


class RepoConfig(_Strict):
    """Tickets on an existing repository: how big it may be, where its environments are kept."""

    max_files: int = Field(
        default=20000,
        gt=0,
        description=(
            "Most files a repository may track at its base commit (`git ls-tree -r`); a "
            "larger one is refused (exit code 2) before any work."
        ),
    )
    max_mb: int = Field(
        default=200,
        gt=0,
        description=(
            "Most megabytes the files a repository tracks at its base commit may hold "
            "together; a larger one is refused (exit code 2) before any work."
        ),
    )
    cache_dir: str = Field(
        default="~/.cache/darkfactory/envs",
        min_length=1,
        description=(
            "Where a repository's environment (its dependencies, installed from wheels) is "
            "kept, one entry per repository, dependency set and sandbox Python, so the next "
            "ticket on the same repository reuses it. `~` is your home directory; a relative "
            "path is taken from the current directory."
        ),
    )

    def cache_path(self) -> Path:
        """``cache_dir`` with ``~`` expanded, absolute."""
        return Path(self.cache_dir).expanduser().absolute()


class FactoryConfig(_Strict):
    """Pipeline settings (``factory.yaml``). Every key is optional."""

    spec: str | None = Field(
        default=None,
        description=(
            "The spec `crewai run` builds when the `SPEC` environment variable is not set. "
            "A relative path is taken from the folder that holds the config folder (the "
            "project root), so `crewai run` works from any directory of the project."
        ),
    )
    runs_dir: str = Field(
        default="runs",
        description="Directory that gets one sub-directory per run (spec, workspace, trace, report).",
    )
    max_fix_rounds: int = Field(
        default=3,
        ge=0,
        le=20,
        description=(
            "How many times failing tests go back to the crew to be fixed before the run "
            "fails (0 to 20)."
        ),
    )
    max_delegations_per_phase: int = Field(
        default=6,
        ge=2,
        le=50,
        description=(
            "Most delegations (and questions) the manager may send its coworkers in one "
            "phase, refused ones included (2 to 50). The last is not run: the manager is "
            "told to give its final answer. One more ends the run `escalated` as stuck (a "
            "manager that keeps delegating is looping), within twice this many model calls "
            "when each coworker answers in one. The same task to the same coworker runs at "
            "most twice; the third time is refused."
        ),
    )
    holdout: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "Share of the spec's acceptance test functions (0 to below 1) sealed from every "
            "agent: kept out of the workspace, the agents' sandbox and every prompt, run by "
            "the verify phase, which delivers only if they pass too; their failures reach the "
            "fix task as test names and exception types only. At least one test is sealed "
            "when above 0, never all; the same spec seals the same tests. New projects only "
            "(When the model misbehaves: Teaching to the test)."
        ),
    )
    model: str | None = Field(
        default=None,
        description=(
            "Model for every role without its own `llm:`, as CrewAI names it (e.g. "
            "`openai/gpt-4o-mini`). Unset: the `MODEL` environment variable (or `.env`)."
        ),
    )
    sandbox: SandboxConfig = Field(
        default_factory=SandboxConfig,
        description="Where generated code and tests run, and the limits on every command.",
    )
    tests: TestsConfig = Field(
        default_factory=TestsConfig, description="How the verify phase runs the tests."
    )
    budget: BudgetConfig = Field(
        default_factory=BudgetConfig, description="Spending limits of one run."
    )
    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        description="How every model call reaches the provider: its timeout and its retries.",
    )
    checkpoints: CheckpointsConfig = Field(
        default_factory=CheckpointsConfig,
        description=(
            "Where a person approves the run. Without a terminal, `ask` pauses the run "
            "(status `awaiting_approval`, exit code 3) until `darkfactory approve RUN_ID` "
            "(or `--reject --reason TEXT`)."
        ),
    )
    deploy: DeployConfig = Field(
        default_factory=DeployConfig, description="The command that ships a delivered run, if any."
    )
    prices: dict[Text, PriceConfig] = Field(
        default_factory=dict,
        description=(
            "Prices of models that the genai-prices table (bundled with Dark Factory, read "
            "offline) does not know, or that you pay differently for: USD per million tokens, "
            "by model name as CrewAI names it; a key may be a shell-style pattern such as "
            "`openai/*`. They take precedence over the table (Models and playbooks: Prices)."
        ),
    )

    repo: RepoConfig = Field(
        default_factory=RepoConfig,
        description=(
            "Tickets on an existing repository (`--repo`): its size limits and where its "
            "environments are cached."
        ),
    )
    deliver: DeliverConfig = Field(
        default_factory=DeliverConfig,
        description=(
            "Where a run on an existing repository delivers its branch: the push and the "
            "draft pull request."
        ),
    )

    def limits(self) -> Limits:
        """The sandbox limits (``sandbox.limits()``)."""
        return self.sandbox.limits()


@dataclass(frozen=True)
class Config:
    """A loaded, valid config directory."""

    agents: dict[str, AgentConfig]
    tasks: dict[str, TaskConfig]
    factory: FactoryConfig
    dir: Path
    #: The project's own tools (``tools/`` beside ``dir``), if any (``darkfactory.tools``).
    tools_dir: Path | None = None


def default_config_dir() -> Path:
    """The ``config/`` of the project the working directory is in, else the default one."""
    return project.config_dir()


def load_config(config_dir: Path | None = None) -> Config:
    """Load and validate ``agents.yaml``, ``tasks.yaml`` and ``factory.yaml`` from ``config_dir``."""
    d = Path(config_dir) if config_dir is not None else default_config_dir()
    if not d.is_dir():
        raise ConfigError(
            "config directory not found",
            file=d,
            hint=f"it must hold {AGENTS_FILE}, {TASKS_FILE} and {FACTORY_FILE}",
        )
    return Config(
        agents=load_agents(d / AGENTS_FILE),
        tasks=load_tasks(d / TASKS_FILE),
        factory=load_factory(d / FACTORY_FILE),
        dir=d,
        tools_dir=project.tools_dir(d),
    )


#: How crewai-tools names its tools (``FileReadTool``, ``SerperDevTool``); ours are modules.
CREWAI_TOOL_CLASS = re.compile(r"[A-Z][A-Za-z0-9]*Tool")


def load_agents(path: Path) -> dict[str, AgentConfig]:
    """Validate an ``agents.yaml``: its roles, their tools and the manager's rules."""
    data, locs = _load_mapping(path, what="role", example="developer:\n  role: Software Developer")
    for key, value in data.items():
        _check_keys(AgentConfig, REFUSED_AGENT_KEYS, value, path, locs, key, what="role")
    agents = {key: _model(AgentConfig, value, path, locs, key) for key, value in data.items()}
    _require(path, locs, agents, REQUIRED_ROLES, "role")
    for key, agent in agents.items():
        _check_crewai_settings(key, agent, path, locs)
    manager = agents[MANAGER]
    if manager.tools:
        raise ConfigError(
            "a hierarchical manager may not have tools: CrewAI forbids it",
            file=path,
            line=locs.line_of((MANAGER, "tools")),
            key=f"{MANAGER}.tools",
            hint="remove tools: from the manager; it delegates to coworkers, who have the tools",
        )
    available = tool_registry.available_tool_names(project.tools_dir(path.parent))
    for key, agent in agents.items():
        for i, name in enumerate(agent.tools):
            if name not in available and CREWAI_TOOL_CLASS.fullmatch(name):
                raise ConfigError(
                    f"role {key} names {name!r}, a crewai-tools class: Dark Factory runs no "
                    "crewai-tools tool (it would run on the host, outside the sandbox)",
                    file=path,
                    line=locs.line_of((key, "tools", i)),
                    key=f"{key}.tools.{i}",
                    hint=(
                        "see docs/configuration.md, section crewai-tools: name a built-in tool "
                        f"({', '.join(available) or '(none)'}), or wrap the class in a tool of "
                        "your own in the project's tools/"
                    ),
                )
            if name not in available:
                close = difflib.get_close_matches(name, available, n=1)
                did_you = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"role {key} names unknown tool {name!r}{did_you}",
                    file=path,
                    line=locs.line_of((key, "tools", i)),
                    key=f"{key}.tools.{i}",
                    hint=(
                        f"available tools: {', '.join(available) or '(none)'}; a tool is a "
                        "module named like the tool: built in, in the project's tools/ (beside "
                        "config/), or an installed package's darkfactory.tools entry point"
                    ),
                )
    seen: dict[str, str] = {}
    for key, agent in agents.items():
        norm = agent.role.casefold()
        if norm in seen:
            other = seen[norm]
            raise ConfigError(
                f"role {key} has the same role text as {other} "
                f"(line {locs.line_of((other, 'role'))}): {agent.role!r}",
                file=path,
                line=locs.line_of((key, "role")),
                key=f"{key}.role",
                hint="the manager delegates to a coworker by its role text, so each must be unique",
            )
        seen[norm] = key
    return agents


def load_tasks(path: Path) -> dict[str, TaskConfig]:
    """Validate a ``tasks.yaml``: required tasks, no ``agent:``, known placeholders only."""
    data, locs = _load_mapping(
        path, what="task", example="design:\n  description: ...\n  expected_output: ..."
    )
    for key, value in data.items():
        _check_keys(TaskConfig, REFUSED_TASK_KEYS, value, path, locs, key, what="task")
    tasks = {key: _model(TaskConfig, value, path, locs, key) for key, value in data.items()}
    _require(path, locs, tasks, REQUIRED_TASKS, "task")
    for key, task in tasks.items():
        for field in ("description", "expected_output"):
            _check_placeholders(getattr(task, field), path, locs, (key, field))
    return tasks


def _check_keys(
    model: type[BaseModel],
    refused: dict[str, Refusal],
    value: Any,
    path: Path,
    locs: Locations,
    key: str,
    *,
    what: str,
) -> None:
    """A key ``model`` lacks: a CrewAI key refused here, with why, else a typo."""
    if not isinstance(value, dict):
        return  # pydantic says what it must be
    known = list(model.model_fields)
    for name in value:
        if name in known:
            continue
        where = (key, name)
        if name in refused:
            reason = refused[name]
            raise ConfigError(
                f"CrewAI's {name} is not supported here because {reason.why}",
                file=path,
                line=locs.line_of(where),
                key=f"{key}.{name}",
                hint=f"remove {name}: from {what} {key}"
                + (f"; {reason.instead}" if reason.instead else ""),
            )
        close = difflib.get_close_matches(str(name), known, n=1)
        did_you = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown key {str(name)!r}{did_you}",
            file=path,
            line=locs.line_of(where),
            key=f"{key}.{name}",
            hint=(
                f"a {what} takes {', '.join(known)}; the configuration docs list them and "
                "the CrewAI keys refused here"
            ),
        )


def _check_crewai_settings(key: str, agent: AgentConfig, path: Path, locs: Locations) -> None:
    """The rules of the CrewAI keys a role may set: who delegates, what needs reasoning."""
    is_manager = key == MANAGER
    if agent.allow_delegation is not None and agent.allow_delegation is not is_manager:
        why = (
            "the manager works only by delegating (CrewAI turns delegation on for a "
            "hierarchical manager, whatever this says)"
            if is_manager
            else "only the manager delegates: a worker delegating to a coworker would go "
            "around the manager and the role the pipeline routed the work to (and CrewAI's "
            "hierarchical crew ignores it on a worker)"
        )
        raise ConfigError(
            f"CrewAI's allow_delegation: {str(agent.allow_delegation).lower()} is not "
            f"supported on {'the manager' if is_manager else 'a worker'} here because {why}",
            file=path,
            line=locs.line_of((key, "allow_delegation")),
            key=f"{key}.allow_delegation",
            hint=f"remove allow_delegation: from role {key}, or set it to "
            f"{str(is_manager).lower()}",
        )
    if agent.max_reasoning_attempts is not None and not agent.reasoning:
        raise ConfigError(
            "max_reasoning_attempts needs reasoning: true (it bounds the refinements of "
            "reasoning's plan)",
            file=path,
            line=locs.line_of((key, "max_reasoning_attempts")),
            key=f"{key}.max_reasoning_attempts",
            hint=f"add reasoning: true to role {key}, or remove max_reasoning_attempts",
        )


def load_factory(path: Path) -> FactoryConfig:
    """Validate a ``factory.yaml``; an empty file means every default."""
    data, locs = load_yaml(path, error=ConfigError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"must be a mapping of settings, got {_kind(data)}", file=path, line=locs.line_of(())
        )
    try:
        return FactoryConfig.model_validate(data)
    except ValidationError as exc:
        raise pydantic_errors(exc, file=path, locs=locs, error=ConfigError) from None


def _load_mapping(path: Path, *, what: str, example: str) -> tuple[dict[str, Any], Locations]:
    data, locs = load_yaml(path, error=ConfigError)
    if data is None:
        raise ConfigError(
            f"is empty: it must define the {what}s", file=path, hint=f"e.g.\n{example}"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"must be a mapping of {what} names to settings, got {_kind(data)}",
            file=path,
            line=locs.line_of(()),
            hint=f"e.g.\n{example}",
        )
    for key in data:
        if not (isinstance(key, str) and key.isidentifier()):
            raise ConfigError(
                f"{what} name {key!r} is not a valid identifier",
                file=path,
                line=locs.line_of((str(key),)),
                hint="use letters, digits and underscores, e.g. qa_engineer",
            )
    return data, locs


M = TypeVar("M", bound=BaseModel)


def _model(model: type[M], value: Any, path: Path, locs: Locations, key: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise pydantic_errors(exc, file=path, locs=locs, prefix=(key,), error=ConfigError) from None


def _require(
    path: Path, locs: Locations, found: dict[str, Any], required: tuple[str, ...], what: str
) -> None:
    missing = [k for k in required if k not in found]
    if missing:
        raise ConfigError(
            f"missing {what}{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
            file=path,
            line=locs.line_of(()),
            hint=f"the pipeline needs these {what}s: {', '.join(required)}",
        )


def _check_placeholders(text: str, path: Path, locs: Locations, where: KeyPath) -> None:
    key = ".".join(map(str, where))
    try:
        fields = [
            (name, spec, conv)
            for _, name, spec, conv in string.Formatter().parse(text)
            if name is not None
        ]
    except ValueError as exc:
        raise ConfigError(
            f"bad braces: {exc}",
            file=path,
            line=locs.line_of(where),
            key=key,
            hint="a placeholder is {name}; write {{ and }} for literal braces",
        ) from None
    for name, spec, conv in fields:
        shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        if spec or conv:
            raise ConfigError(
                f"placeholder {shown} has a format: write it as {{{name}}}",
                file=path,
                line=_line_containing(path, locs.line_of(where), shown),
                key=key,
            )
        if name not in PLACEHOLDERS:
            raise ConfigError(
                f"unknown placeholder {shown}",
                file=path,
                line=_line_containing(path, locs.line_of(where), shown),
                key=key,
                hint=f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; write {{{{ and }}}} for literal braces",
            )


def _line_containing(path: Path, start: int | None, needle: str) -> int | None:
    """The first line from ``start`` on that contains ``needle``, else ``start``."""
    if start is None:
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    for n in range(start, len(lines) + 1):
        if needle in lines[n - 1]:
            return n
    return start


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"
