"""Tell a person the spec is ambiguous, instead of guessing."""

from __future__ import annotations

from pydantic import BaseModel, Field

from darkfactory.tools._base import ToolArgs, WorkspaceTool


class ReportAmbiguityArgs(ToolArgs):
    question: str = Field(
        description="The question a person must answer, e.g. 'Does a last line without a "
        "newline count?'"
    )
    reason: str = Field(
        description="Why the spec cannot answer it: quote the requirements that conflict or "
        "are silent."
    )


class ReportAmbiguityTool(WorkspaceTool):
    name: str = "report_ambiguity"
    description: str = (
        "Report that the spec is ambiguous or contradictory on a point that decides what to "
        "build: the run stops after this phase and asks a person. Only when no reading is "
        "clearly right; never for what the design or the acceptance tests settle."
    )
    args_schema: type[BaseModel] = ReportAmbiguityArgs

    def _run(self, question: str, reason: str) -> str:
        ctx = self.run_context
        ctx.ambiguities.append({"question": question, "reason": reason})
        ctx.emit("ambiguity", question=question, reason=reason)
        return (
            "Recorded. The run will stop after this phase and ask a person. Finish your answer "
            "by stating the question."
        )
