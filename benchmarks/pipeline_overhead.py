"""Dark Factory's pipeline against a stock CrewAI hierarchical crew, on the same answers.

Both sides build the example spec (``examples/specs/wordcount.yaml``) with the scripted model
playing ``examples/playbooks/wordcount.yaml`` (a test and rehearsal tool, not AI), so both
make the same delegations and the same tool calls, in a sandbox of the same backend:

* **Dark Factory**: a whole run, in-process (``prepare_run`` + ``execute``, what
  ``darkfactory run`` does): four crew phases (design, implement, verify = QA's unit tests,
  document), each a hierarchical crew of its own with its task rendered from the run's
  current state (``RunEnv.prompt_inputs``); plus the work the stock crew does not do, in
  code and not in tokens: the pipeline runs the acceptance and unit tests itself (verify),
  builds the docs strictly and runs their examples (docs check), commits every phase, writes
  the trace and the report.
* **stock CrewAI**: one hierarchical crew built the way CrewAI's own examples build one,
  with CrewAI's default prompts: ``Agent(role, goal, backstory, tools)`` per worker with
  the plain role texts of ``stock_crew.yaml``, CrewAI's default manager (``manager_llm``),
  the design, implement, verify and document tasks of ``config/tasks.yaml`` as ``Task``s
  rendered by ``kickoff(inputs=...)`` with the inputs Dark Factory's first phase gets,
  ``Process.hierarchical``. Its file tools are crewai-tools' (``DirectoryReadTool``,
  ``FileReadTool``, ``FileWriterTool``; the playbook's calls of ours are translated to
  theirs): the script refuses to run without crewai-tools (``pip install -e '.[bench]'``);
  its other tools (run_tests, ...) are ours with CrewAI's default prompt block. No verify,
  no docs check, no commits, no report.

Every model call is metered the same way on both sides, by wrapping the scripted model's
``call``: the prompt tokens of the messages it receives, counted with the estimator the
run's budget accounting uses for the scripted model (``estimate_tokens``: 4 characters a
token), and the time spent inside the call, which is subtracted from the wall time.

Prints Markdown: the median of ``--runs`` runs of each side (after one warm-up run of each,
not counted) with the ratio Dark Factory / stock, then where the prompt tokens go (per role,
per phase, per part of the prompt) for both sides. Usage::

    .venv/bin/python benchmarks/pipeline_overhead.py [--runs 5] [--sandbox bwrap]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import re
import statistics
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from darkfactory.engine.session import OFFLINE_ENV  # noqa: E402  (imports no CrewAI)

os.environ.update({k: v for k, v in OFFLINE_ENV.items() if k not in os.environ})

import yaml  # noqa: E402
from crewai.tools import BaseTool  # noqa: E402
from crewai.utilities.string_utils import sanitize_tool_name  # noqa: E402
from pydantic import Field, PrivateAttr  # noqa: E402

from darkfactory.config import Config, load_config  # noqa: E402
from darkfactory.models import ModelPlan  # noqa: E402
from darkfactory.models.playbook import Playbook, load_playbook  # noqa: E402
from darkfactory.models.scripted import (  # noqa: E402
    DELEGATE_TOOL,
    ScriptedLLM,
    estimate_tokens,
    messages_text,
)

SPEC = REPO / "examples" / "specs" / "wordcount.yaml"
PLAYBOOK = REPO / "examples" / "playbooks" / "wordcount.yaml"
CONFIG = REPO / "config"
MODEL = f"scripted:{PLAYBOOK}"
#: The tasks both sides run for this scenario, in order (tasks.yaml keys).
TASKS = ("design", "implement", "verify", "document")
#: The tasks a crew task can be (the manager's calls carry one; workers' calls do not).
ALL_TASKS = (*TASKS, "fix", "document_fix")

OBSERVATION = "\nObservation: "


@dataclass(frozen=True)
class Markers:
    """Where the parts of a prompt start, from one set of CrewAI's prompt slices."""

    tools: str  #: the tool list's heading
    format: str  #: the response format instructions after the tool list
    context: str  #: before the context of a task
    expected: str  #: before the expected output
    begin: str  #: after the task
    nudge: str  #: the message after each tool result
    reminder: str  #: Dark Factory's short reminder in place of the repeated tool list

    @classmethod
    def of(cls, slices: dict[str, str]) -> Markers:
        tools, fmt = slices["tools"].split("{tools}")
        return cls(
            tools=tools.strip(),
            format=fmt[: fmt.index(":")],
            context=slices["task_with_context"].split("{task}")[1].split("{context}")[0],
            expected="\n" + slices["expected_output"].split("{expected_output}")[0],
            begin=slices["task"].split("{input}")[1][:12],
            nudge=slices["post_tool_reasoning"],
            reminder=slices.get("tools_reminder", "\0").split("{")[0],
        )


def _marker_sets() -> tuple[Markers, ...]:
    """CrewAI's own slices (the stock crew) and Dark Factory's (crews/prompts.json)."""
    from crewai.utilities.i18n import I18N

    from darkfactory.crews.prompts import overrides

    stock = I18N()._prompts["slices"]
    return (Markers.of(stock), Markers.of({**stock, **overrides()["slices"]}))


MARKERS = _marker_sets()


def _markers(text: str, field: str) -> Markers | None:
    """The marker set whose ``field`` occurs in ``text``."""
    return next((m for m in MARKERS if getattr(m, field) in text), None)


# -- metering ---------------------------------------------------------------------------
@dataclass
class Call:
    """One model call as the model received it."""

    role: str  #: the asking agent's role key (agents.yaml)
    phase: str  #: the crew task being worked on (tasks.yaml key)
    messages: list[tuple[str, str]]  #: (message role, content)
    prompt_tokens: int
    seconds: float  #: spent inside the model's call()
    response: str
    #: The crew task's rendered description, when the manager asks about it.
    task_description: str | None = None

    @property
    def delegated_to(self) -> str | None:
        """The coworker this call's answer delegates to, if it delegates."""
        if f"Action: {DELEGATE_TOOL}" not in self.response:
            return None
        args = json.loads(self.response.split("Action Input:", 1)[1])
        return str(args["coworker"])


class MeteredLLM(ScriptedLLM):
    """The scripted model, metered: each call's messages, prompt tokens and time."""

    _records: list[Call] = PrivateAttr(default_factory=list)
    _phase: str = PrivateAttr(default="")

    def __init__(self, playbook: Playbook, role_keys: dict[str, str], **kwargs: Any) -> None:
        super().__init__(playbook, role_keys, **kwargs)

    def call(
        self,
        messages: str | list[Any],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: Any | None = None,
        **kwargs: Any,
    ) -> str:
        started = time.perf_counter()
        task_name = getattr(from_task, "name", None)
        if task_name in ALL_TASKS:  # the manager's call on a crew task; workers follow it
            self._phase = task_name
        msgs = (
            [("user", messages)]
            if isinstance(messages, str)
            else [
                (str(m.get("role", "")), messages_text([m]))
                if isinstance(m, dict)
                else ("", messages_text([m]))
                for m in messages
            ]
        )
        response = ""
        try:
            response = super().call(
                messages,
                tools,
                callbacks,
                available_functions,
                from_task,
                from_agent,
                response_model,
                **kwargs,
            )
            return response
        finally:
            role = getattr(from_agent, "role", "")
            self._records.append(
                Call(
                    role=self.role_keys.get(role, role),
                    phase=self._phase,
                    messages=msgs,
                    prompt_tokens=estimate_tokens(messages_text(messages)),
                    seconds=time.perf_counter() - started,
                    response=response,
                    task_description=getattr(from_task, "description", None)
                    if task_name in ALL_TASKS
                    else None,
                )
            )

    @property
    def records(self) -> list[Call]:
        return list(self._records)


def metered_llm(
    config: Config, book: Playbook | None = None, roles: dict[str, str] | None = None
) -> MeteredLLM:
    """The metered scripted model playing ``book`` (the example playbook) for ``roles``
    (role text to role key; default: agents.yaml's)."""
    book = book or load_playbook(PLAYBOOK, roles=set(config.agents))
    return MeteredLLM(book, roles or {a.role: key for key, a in config.agents.items()})


@dataclass
class _MeteredPlan(ModelPlan):
    """Dark Factory's model plan, with the metered scripted model for every role."""

    metered: Any = None

    def _build(self, name: str, role: str) -> Any:
        return self.metered


@contextlib.contextmanager
def crew_clock() -> Iterator[list[float]]:
    """Seconds spent inside crew kickoffs (CrewAI's own events), summed when the block ends."""
    from crewai.events import CrewKickoffCompletedEvent, CrewKickoffStartedEvent, crewai_event_bus

    starts: list[float] = []
    ends: list[float] = []
    total: list[float] = []

    def started(source: Any, event: Any) -> None:
        starts.append(event.timestamp.timestamp())

    def completed(source: Any, event: Any) -> None:
        ends.append(event.timestamp.timestamp())

    crewai_event_bus.on(CrewKickoffStartedEvent)(started)
    crewai_event_bus.on(CrewKickoffCompletedEvent)(completed)
    try:
        yield total
    finally:
        crewai_event_bus.flush()
        crewai_event_bus.off(CrewKickoffStartedEvent, started)
        crewai_event_bus.off(CrewKickoffCompletedEvent, completed)
        total.append(sum(e - s for s, e in zip(sorted(starts), sorted(ends), strict=False)))


# -- one run of each side ---------------------------------------------------------------
@dataclass
class Side:
    """What one run of one side did and cost."""

    name: str
    wall_s: float
    crew_s: float
    calls: list[Call]
    #: Playbook steps left unplayed, per role (all 0: every scripted step was asked for).
    steps_left: dict[str, int]
    #: The run's own outcome: Dark Factory's status; the stock crew's "finished".
    status: str
    #: Verify rounds and docs checks the pipeline ran (in code; the stock crew runs none).
    checks: dict[str, int] = field(default_factory=dict)
    #: Seconds those checks took (the trace's verify and docs_check phases).
    checks_s: float = 0.0

    @property
    def model_s(self) -> float:
        return sum(c.seconds for c in self.calls)

    @property
    def overhead_s(self) -> float:
        """Wall time excluding the time spent inside the model's calls."""
        return self.wall_s - self.model_s

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def delegations(self) -> list[tuple[str, str]]:
        """(phase, coworker role) of every delegation the manager made, in order."""
        return [(c.phase, to) for c in self.calls if (to := c.delegated_to) is not None]


def run_dark_factory(workdir: Path, backend: str) -> Side:
    """A whole Dark Factory run of the example spec, as ``darkfactory run`` makes one."""
    from darkfactory.engine.session import execute, prepare_run
    from darkfactory.spec import load_spec

    with crew_clock() as crew_s:
        started = time.perf_counter()
        config = load_config(CONFIG)
        spec = load_spec(SPEC)
        llm = metered_llm(config)
        models = _MeteredPlan(config, cli_model=MODEL, metered=llm)
        env = prepare_run(spec, config, models, runs_dir=workdir / "runs", backend=backend)
        outcome = execute(env, cli_model=MODEL, backend=backend)
        wall = time.perf_counter() - started
    return Side(
        name="Dark Factory",
        wall_s=wall,
        crew_s=crew_s[0],
        calls=llm.records,
        steps_left=llm.remaining(),
        status=outcome.status,
        **_checks(env.run_dir / "trace.jsonl"),
    )


def _checks(trace: Path) -> dict[str, Any]:
    """How many verify rounds and docs checks a run's trace shows, and their seconds."""
    from datetime import datetime

    from darkfactory.reporting.trace import read_trace

    records = read_trace(trace)
    seconds, started = 0.0, None
    for r in records:
        if r.get("phase") not in ("verify", "docs_check"):
            continue
        ts = datetime.fromisoformat(r["ts"]).timestamp()
        if r["kind"] == "phase_start":
            started = ts
        elif r["kind"] == "phase_end" and started is not None:
            seconds, started = seconds + ts - started, None
    return {
        "checks": {
            "verify rounds": sum(1 for r in records if r.get("kind") == "verify"),
            "docs checks": sum(1 for r in records if r.get("kind") == "docs_check"),
        },
        "checks_s": seconds,
    }


# -- the stock side's tools ------------------------------------------------------------
STOCK_ROLES = Path(__file__).with_name("stock_crew.yaml")
#: The role CrewAI gives its default manager (``hierarchical_manager_agent`` in en.json).
STOCK_MANAGER = "Crew Manager"


class DefaultRendered(BaseTool):
    """One of Dark Factory's tools as a plain CrewAI tool: CrewAI's own prompt block."""

    inner: Any = Field(exclude=True)

    def _run(self, **kwargs: Any) -> Any:
        return self.inner._run(**kwargs)


def default_rendered(tool: BaseTool) -> BaseTool:
    return DefaultRendered(
        name=tool.name, description=tool.description, args_schema=tool.args_schema, inner=tool
    )


#: A stock tool standing in for one of ours, and how our arguments become its arguments.
StandIn = tuple[BaseTool, Callable[[dict[str, Any]], dict[str, Any]]]


def _read_args(a: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"file_path": a["path"]}
    if a.get("start_line"):
        args["start_line"] = a["start_line"]
    if a.get("end_line"):
        args["line_count"] = a["end_line"] - a.get("start_line", 1) + 1
    return args


NO_CREWAI_TOOLS = (
    "pipeline_overhead.py: the stock crew's file tools are crewai-tools', and crewai-tools is "
    "not installed; install the benchmark's extra: pip install -e '.[bench]'"
)


def crewai_file_tools(workspace: Path) -> dict[str, StandIn]:
    """crewai-tools' file tools for our list_files, read_file and write_file.

    Dark Factory does not depend on crewai-tools (its tools run on the host, outside the
    sandbox); the extra ``bench`` pins it. Without it the benchmark stops: a stock crew
    with our file tools would not be stock.
    """
    try:
        from crewai_tools import DirectoryReadTool, FileReadTool, FileWriterTool
    except ImportError as exc:
        raise SystemExit(NO_CREWAI_TOOLS) from exc
    base = str(workspace)
    return {
        "list_files": (
            DirectoryReadTool(),
            lambda a: {"directory": str(workspace / a.get("path", "."))},
        ),
        "read_file": (FileReadTool(base_dir=base), _read_args),
        "write_file": (
            FileWriterTool(base_dir=base),
            lambda a: {"filename": a["path"], "content": a["content"], "overwrite": True},
        ),
    }


def stock_playbook(book: Playbook, stand_ins: dict[str, StandIn]) -> Playbook:
    """The playbook with each call of a tool that has a stand-in made to the stand-in."""
    roles = {
        role: [
            step.model_copy(
                update={
                    "tool": sanitize_tool_name(stand_ins[step.tool][0].name),
                    "args": stand_ins[step.tool][1](step.args),
                }
            )
            if step.tool in stand_ins
            else step
            for step in steps
        ]
        for role, steps in book.roles.items()
    }
    return book.model_copy(update={"roles": roles})


def run_stock(workdir: Path, backend: str) -> Side:
    """The stock hierarchical crew: plain roles, CrewAI's manager and prompts, one kickoff."""
    from crewai import Agent, Crew, Process, Task
    from crewai.agents.agent_builder.base_agent import BaseAgent

    from darkfactory.engine.environment import prompt_inputs
    from darkfactory.sandbox import open_sandbox
    from darkfactory.sandbox.base import Mount, SandboxSpec
    from darkfactory.spec import load_spec
    from darkfactory.tools import build_tool
    from darkfactory.workspace.context import RunContext

    with crew_clock() as crew_s:
        started = time.perf_counter()
        roles = yaml.safe_load(STOCK_ROLES.read_text(encoding="utf-8"))
        tasks = yaml.safe_load((CONFIG / "tasks.yaml").read_text(encoding="utf-8"))
        config = load_config(CONFIG)  # for the sandbox limits and the playbook's roles only
        spec = load_spec(SPEC)
        # The same workspace a run starts with: the spec's acceptance tests, also mounted
        # read-only at /acceptance where the run_tests tool looks for them.
        workspace, acceptance = (workdir / d for d in ("workspace", "acc"))
        for root in (workspace / "acceptance", acceptance):
            for test in spec.acceptance_tests:
                (root / test.name).parent.mkdir(parents=True, exist_ok=True)
                (root / test.name).write_text(test.content, encoding="utf-8")
        sandbox = open_sandbox(
            backend,
            SandboxSpec(
                workspace=workspace,
                mounts=[
                    Mount(acceptance, "/acceptance", read_only=True),
                ],
                limits=config.factory.limits(),
                image=config.factory.sandbox.image,
                hand_over=True,
            ),
        )
        try:
            ctx = RunContext(workspace=workspace, sandbox=sandbox)
            stand_ins = crewai_file_tools(workspace)

            def tool(name: str) -> BaseTool:
                if name in stand_ins:
                    return stand_ins[name][0]
                return default_rendered(build_tool(name, ctx))

            book = load_playbook(PLAYBOOK, roles=set(config.agents))
            llm = metered_llm(
                config,
                stock_playbook(book, stand_ins),
                {STOCK_MANAGER: "manager", **{r["role"]: key for key, r in roles.items()}},
            )
            # The inputs Dark Factory's first phase renders its task with.
            inputs = prompt_inputs(spec, config, workdir)
            workers: list[BaseAgent] = [
                Agent(
                    role=r["role"],
                    goal=r["goal"],
                    backstory=r["backstory"],
                    tools=[tool(name) for name in config.agents[key].tools],
                    llm=llm,
                )
                for key, r in roles.items()
            ]
            crew = Crew(
                agents=workers,
                tasks=[
                    Task(
                        name=key,
                        description=tasks[key]["description"],
                        expected_output=tasks[key]["expected_output"],
                    )
                    for key in TASKS
                ],
                process=Process.hierarchical,
                manager_llm=llm,
            )
            with contextlib.redirect_stdout(sys.stderr):
                crew.kickoff(inputs=inputs)
            if llm.fatal is not None:
                raise llm.fatal
        finally:
            sandbox.close()
        wall = time.perf_counter() - started
    return Side(
        name="stock CrewAI",
        wall_s=wall,
        crew_s=crew_s[0],
        calls=llm.records,
        steps_left=llm.remaining(),
        status="finished",
    )


def measure(workdir: Path, *, backend: str = "bwrap") -> tuple[Side, Side]:
    """One run of each side, each in its own directory under ``workdir``."""
    df_dir, stock_dir = workdir / "darkfactory", workdir / "stock"
    df_dir.mkdir(parents=True)
    stock_dir.mkdir(parents=True)
    return run_dark_factory(df_dir, backend), run_stock(stock_dir, backend)


# -- where the prompt tokens go ---------------------------------------------------------
PART_ORDER = [
    "agents.yaml: role, goal, backstory",
    "tools/: worker tools (name, JSON schema, description)",
    "CrewAI: the manager's delegation tools",
    "CrewAI: response format instructions",
    "tasks.yaml: task text (manager)",
    "input: title and summary",
    "input: requirements",
    "input: acceptance tests inlined",
    "input: DESIGN.md inlined",
    "input: workspace file list",
    "input: other (failures, feedback, rounds)",
    "tasks.yaml: expected_output (manager)",
    "CrewAI: previous tasks' outputs (manager)",
    "manager's delegation: task and context (worker)",
    "conversation: the model's earlier answers",
    "conversation: tool results",
    "CrewAI: tool list and format repeated every 3rd tool use",
    "CrewAI: other scaffolding",
]
INPUT_LABELS = {
    "title": "input: title and summary",
    "summary": "input: title and summary",
    "requirements": "input: requirements",
    "acceptance_tests": "input: acceptance tests inlined",
    "design": "input: DESIGN.md inlined",
    "workspace_files": "input: workspace file list",
}


def _template_parts(template: str, rendered: str) -> dict[str, int] | None:
    """Characters of each placeholder's value in ``rendered``, and of the template's text."""
    pattern, seen = "", set()
    template = template.strip()  # the validated config strips it; CrewAI does not
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is not None:
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>.*?)"
            seen.add(name)
    match = re.fullmatch(pattern, rendered.strip(), re.DOTALL)
    if match is None:
        return None
    parts: Counter[str] = Counter()
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        parts["tasks.yaml: task text (manager)"] += len(literal)
        if name is not None:
            label = INPUT_LABELS.get(name, "input: other (failures, feedback, rounds)")
            parts[label] += len(match.group(name))
    return dict(parts)


def _split_system(text: str, role: str) -> Counter[str]:
    parts: Counter[str] = Counter()
    m = _markers(text, "tools")
    if m is not None and m.format in text:
        head, rest = text.split(m.tools, 1)
        tools, tail = rest.split(m.format, 1)
        label = (
            "CrewAI: the manager's delegation tools"
            if role == "manager"
            else "tools/: worker tools (name, JSON schema, description)"
        )
        parts[label] += len(m.tools) + len(tools)
        parts["CrewAI: response format instructions"] += len(m.format) + len(tail)
    else:
        head = text
    parts["agents.yaml: role, goal, backstory"] += len(head)
    return parts


def _split_task(text: str, call: Call, templates: dict[str, dict[str, str]]) -> Counter[str]:
    """The first user message: the crew task (manager) or the delegation (worker)."""
    parts: Counter[str] = Counter()
    m = _markers(text, "expected") or MARKERS[0]
    body, _, after = text.partition(m.expected)
    expected, _, rest = after.partition("\n")
    context = ""
    if m.context in rest:
        context = rest.split(m.context, 1)[1].split(m.begin, 1)[0]
    description = call.task_description
    if description is not None and description in body:
        template = templates.get(call.phase, {})
        split = _template_parts(template.get("description", ""), description)
        parts.update(split or {"tasks.yaml: task text (manager)": len(description)})
        parts["tasks.yaml: expected_output (manager)"] += len(expected)
        parts["CrewAI: previous tasks' outputs (manager)"] += len(context)
    else:
        task = body.split("Current Task: ", 1)[-1]
        parts["manager's delegation: task and context (worker)"] += len(task) + len(context)
    return parts


def _split_conversation(role: str, text: str) -> Counter[str]:
    parts: Counter[str] = Counter()
    if role == "user" and any(text.startswith(m.nudge) for m in MARKERS):
        parts["CrewAI: other scaffolding"] += len(text)
        return parts
    answer, sep, observation = text.partition(OBSERVATION)
    parts["conversation: the model's earlier answers"] += len(answer)
    if sep:
        m = _markers(observation, "tools") or _markers(observation, "reminder") or MARKERS[0]
        head = "\n\n" + m.tools if m.tools in observation else m.reminder
        result, _, reminder = observation.partition(head)
        parts["conversation: tool results"] += len(sep) + len(result)
        if reminder:
            parts["CrewAI: tool list and format repeated every 3rd tool use"] += len(head) + len(
                reminder
            )
    return parts


def where_tokens_go(calls: list[Call], templates: dict[str, dict[str, str]]) -> dict[str, int]:
    """Prompt tokens per part of the prompt, summed over ``calls`` (4 characters a token)."""
    chars: Counter[str] = Counter()
    for call in calls:
        total = len(messages_text([{"content": c} for _, c in call.messages]))
        parts: Counter[str] = Counter()
        first_user = True
        for i, (role, content) in enumerate(call.messages):
            if role == "system" and i == 0:
                parts += _split_system(content, call.role)
            elif role == "user" and first_user:
                first_user = False
                parts += _split_task(content, call, templates)
            else:
                parts += _split_conversation(role, content)
        parts["CrewAI: other scaffolding"] += total - sum(parts.values())
        chars += parts
    return {label: round(chars[label] / 4) for label in PART_ORDER if chars[label]}


# -- the table --------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    return statistics.median(values)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}x" if b else "n/a"


def summary_table(runs: list[tuple[Side, Side]]) -> str:
    def med(i: int, get: Any) -> float:
        return _median([float(get(pair[i])) for pair in runs])

    rows: list[tuple[str, Any, str]] = [
        ("wall time excluding model time", lambda s: s.overhead_s, "s"),
        ("of it, inside the crews", lambda s: s.crew_s - s.model_s, "s"),
        ("of it, outside the crews", lambda s: s.wall_s - s.crew_s, "s"),
        ("of that, verify and docs check", lambda s: s.checks_s, "s"),
        ("model time (inside LLM.call)", lambda s: s.model_s, "s"),
        ("LLM calls", lambda s: len(s.calls), ""),
        ("prompt tokens, total", lambda s: s.prompt_tokens, ""),
        ("prompt tokens per call, mean", lambda s: s.prompt_tokens / len(s.calls), ""),
        ("prompt tokens per call, max", lambda s: max(c.prompt_tokens for c in s.calls), ""),
        ("delegations", lambda s: len(s.delegations), ""),
    ]
    lines = [
        "| | Dark Factory | stock CrewAI | Dark Factory / stock |",
        "|---|---:|---:|---:|",
    ]
    for label, get, unit in rows:
        df, st = med(0, get), med(1, get)
        cells = f"{df:.2f} s | {st:.2f} s" if unit == "s" else f"{df:.0f} | {st:.0f}"
        lines.append(f"| {label} | {cells} | {_ratio(df, st)} |")
    checks = runs[0][0].checks
    lines.append(
        "| checks run in code (verify rounds, docs checks) | "
        + f"{checks.get('verify rounds', 0)}, {checks.get('docs checks', 0)} | 0, 0 | |"
    )
    return "\n".join(lines)


def breakdown_tables(pair: tuple[Side, Side], templates: dict[str, dict[str, str]]) -> str:
    df, stock = pair

    def table(title: str, a: dict[str, int], b: dict[str, int], order: list[str]) -> str:
        out = [f"| {title} | Dark Factory | stock CrewAI | difference |", "|---|---:|---:|---:|"]
        for key in order:
            x, y = a.get(key, 0), b.get(key, 0)
            if x or y:
                out.append(f"| {key} | {x} | {y} | {x - y:+d} |")
        out.append(
            f"| total | {sum(a.values())} | {sum(b.values())} | "
            f"{sum(a.values()) - sum(b.values()):+d} |"
        )
        return "\n".join(out)

    def by(side: Side, key: str) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for c in side.calls:
            totals[getattr(c, key)] += c.prompt_tokens
        return dict(totals)

    def calls_by(side: Side, key: str) -> dict[str, int]:
        return dict(Counter(getattr(c, key) for c in side.calls))

    roles = list(dict.fromkeys(c.role for c in df.calls + stock.calls))
    phases = list(dict.fromkeys(c.phase for c in df.calls + stock.calls))
    parts_df, parts_stock = (
        where_tokens_go(df.calls, templates),
        where_tokens_go(stock.calls, templates),
    )
    return "\n\n".join(
        [
            table("prompt tokens by role", by(df, "role"), by(stock, "role"), roles),
            table("LLM calls by role", calls_by(df, "role"), calls_by(stock, "role"), roles),
            table("prompt tokens by phase (task)", by(df, "phase"), by(stock, "phase"), phases),
            table("prompt tokens by part of the prompt", parts_df, parts_stock, PART_ORDER),
        ]
    )


NOTES = """\
Dark Factory's time outside the crews is work the stock crew does not do, in code and not
in tokens: the run directory and its git repository, verify (the acceptance and unit tests
run in the sandbox by the pipeline), the docs check (a strict site build and every example
run), a commit per phase, the trace and the report. The stock crew's is its sandbox and
workspace set-up."""


def dump_prompts(pair: tuple[Side, Side], out: Path) -> None:
    """Every call's messages as a text file: ``out/<side>/<nn>-<phase>-<role>.txt``."""
    for side in pair:
        d = out / ("darkfactory" if side.name == "Dark Factory" else "stock")
        d.mkdir(parents=True, exist_ok=True)
        for i, c in enumerate(side.calls, start=1):
            text = "".join(f"===== {role}\n{content}\n" for role, content in c.messages)
            (d / f"{i:02d}-{c.phase}-{c.role}.txt").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="measured runs of each side (median)")
    p.add_argument("--sandbox", default="bwrap", help="sandbox backend of both sides")
    p.add_argument("--no-breakdown", action="store_true", help="print only the summary table")
    p.add_argument(
        "--dump", type=Path, default=None, help="write every prompt of the last run here"
    )
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if importlib.util.find_spec("crewai_tools") is None:  # before the first run, not after
        raise SystemExit(NO_CREWAI_TOOLS)
    templates = yaml.safe_load((CONFIG / "tasks.yaml").read_text(encoding="utf-8"))
    runs: list[tuple[Side, Side]] = []
    with tempfile.TemporaryDirectory(prefix="darkfactory-overhead-") as tmp:
        for i in range(args.runs + 1):  # the first is a warm-up: imports, caches
            pair = measure(Path(tmp) / f"run-{i}", backend=args.sandbox)
            for side in pair:
                if side.status not in ("delivered", "finished") or any(side.steps_left.values()):
                    raise SystemExit(
                        f"{side.name}: run ended {side.status} with playbook steps left "
                        f"{side.steps_left}: the comparison would be unfair"
                    )
            if i:
                runs.append(pair)
    print(
        f"median of {args.runs} runs of each side (after one warm-up run each), sandbox "
        f"{args.sandbox}; tokens estimated as the budget does for the scripted model "
        "(4 characters a token); the stock crew's file tools: crewai-tools "
        + importlib.metadata.version("crewai-tools")
    )
    print()
    print(summary_table(runs))
    print()
    print(NOTES)
    if args.dump is not None:
        dump_prompts(runs[-1], args.dump)
    if not args.no_breakdown:
        print()
        print(breakdown_tables(runs[-1], templates))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
