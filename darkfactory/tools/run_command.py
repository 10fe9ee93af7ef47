"""``run_command``: run one argv in the run's sandbox and report what it did."""

from __future__ import annotations

from pydantic import BaseModel, Field

from darkfactory.sandbox.base import ExecResult
from darkfactory.tools._base import ToolArgs, WorkspaceTool

#: Most characters of each stream shown to the model (its head and tail).
MAX_STREAM_CHARS = 8000
#: Most arguments / characters per argument recorded in the trace.
TRACE_ARGS, TRACE_ARG_CHARS = 40, 200

_LIMIT_TEXT = {
    "timeout": "it ran past its time limit; it and every process it started were killed",
    "output": "it printed more than the sandbox allows; it was killed (output is cut)",
    "memory": "it ran out of the sandbox's memory limit",
    "cpu": "it used up the sandbox's CPU-time limit",
    "file_size": "it tried to write a file larger than the sandbox allows",
    "disk": (
        "it grew the workspace past its disk quota; it was killed, and every command that "
        "writes more is killed too until you delete files"
    ),
}


class RunCommandArgs(ToolArgs):
    argv: list[str] = Field(
        description=(
            "Program and arguments, e.g. ['python', 'app.py']; no shell: for pipes, "
            "redirection or && pass ['sh', '-c', 'command line']."
        )
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Seconds before it and all it started are killed. Default: the sandbox's "
            "limit; at most the run's test timeout."
        ),
    )


class RunCommandTool(WorkspaceTool):
    name: str = "run_command"
    description: str = (
        "Run one command in the sandbox, in the workspace; returns its exit code, stdout "
        "and stderr (long output cut in the middle) and the limit that stopped it, if any. "
        "The sandbox has no network (installs from the internet fail), no host files but "
        "the workspace, limits on time, memory, processes and output, and PYTHONPATH=the "
        "workspace. Refuses an empty argv and NUL characters. For tests use run_tests."
    )
    args_schema: type[BaseModel] = RunCommandArgs

    def _run(self, argv: list[str], timeout_s: float | None = None) -> str:
        ctx = self.run_context
        sandbox = ctx.sandbox
        if sandbox is None:
            raise RuntimeError("run_command needs a RunContext with a sandbox")
        if not argv or not argv[0]:
            return "ERROR: argv is empty; give the program and its arguments, e.g. ['python', 'app.py']."
        if any("\0" in a for a in argv):
            return "ERROR: an argument contains a NUL character, which no program can receive."
        note = ""
        if timeout_s is not None and timeout_s > ctx.test_timeout_s:
            note = f"(timeout_s lowered to the run's maximum of {ctx.test_timeout_s:g}s)\n"
            timeout_s = ctx.test_timeout_s
        result = sandbox.run(list(argv), timeout=timeout_s)
        ctx.emit(
            "sandbox_exec",
            tool=self.name,
            argv=[a[:TRACE_ARG_CHARS] for a in argv[:TRACE_ARGS]],
            exit_code=result.exit_code,
            duration_s=round(result.duration_s, 3),
            killed=result.killed,
        )
        if result.scrubbed:  # what the sandbox undid after the command (sandbox/_scrub.py)
            ctx.emit(
                "security",
                tool=self.name,
                what="scrubbed_after_command",
                paths=[item.rsplit(": ", 1)[0] for item in result.scrubbed],
                done=list(result.scrubbed),
            )
        return note + format_result(result)


def format_result(result: ExecResult, max_chars: int = MAX_STREAM_CHARS) -> str:
    """The exec result as the model reads it."""
    lines = [f"exit code: {result.exit_code}", f"duration: {result.duration_s:.2f}s"]
    if result.killed is not None:
        lines.append(f"KILLED ({result.killed}): {_LIMIT_TEXT.get(result.killed, 'a limit')}")
    if result.scrubbed:
        lines.append("removed/stripped after the command (the workspace may not keep these):")
        lines += [f"  {item}" for item in result.scrubbed]
    for label, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if text:
            lines.append(f"--- {label} ---\n{_cut(text, max_chars)}")
        else:
            lines.append(f"--- {label}: (empty) ---")
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text.rstrip("\n")
    head = limit // 4
    tail = limit - head
    dropped = len(text) - head - tail
    return f"{text[:head]}\n[... {dropped} characters cut ...]\n{text[-tail:]}".rstrip("\n")
