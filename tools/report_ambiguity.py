"""Tell a person the spec is ambiguous, instead of guessing."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools._base import WorkspaceTool


class ReportAmbiguityArgs(BaseModel):
    question: str = Field(
        description="The question a person must answer, e.g. 'Should counts include a trailing "
        "line without a newline?'"
    )
    reason: str = Field(
        description="Why the spec cannot answer it: quote the requirement(s) that conflict or "
        "are silent."
    )


class ReportAmbiguityTool(WorkspaceTool):
    name: str = "report_ambiguity"
    description: str = (
        "Report that the spec is ambiguous or contradictory on a point that decides what to "
        "build, with the question a person must answer. The run stops after this phase and "
        "asks a person (status: escalated). Use it only when no reading of the spec is clearly "
        "right; never for something the design or the acceptance tests already settle."
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
