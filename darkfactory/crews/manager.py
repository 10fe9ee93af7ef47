"""The manager agent, with CrewAI's delegation tools whose arguments are mended first.

Their texts are CrewAI's (``I18N_DEFAULT``, shortened by ``crews/prompts.json``); only the
args schemas differ: they take an object or a list where text belongs and turn it into
text (``crews.delegation.mend``) instead of failing validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crewai import Agent
from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.tools.agent_tools.ask_question_tool import AskQuestionTool
from crewai.tools.agent_tools.delegate_work_tool import DelegateWorkTool
from crewai.tools.base_tool import BaseTool
from crewai.utilities.i18n import I18N_DEFAULT
from pydantic import BaseModel, Field, model_validator

from darkfactory.crews.delegation import mend
from darkfactory.tools._prompt import LeanTool


class DelegateArgs(BaseModel):
    task: str = Field(..., description="The task to delegate")
    context: str = Field("", description="The context for the task")
    coworker: str = Field(..., description="The role/name of the coworker to delegate to")

    @model_validator(mode="before")
    @classmethod
    def _mended(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            mend(data, "task")
        return data


class AskArgs(BaseModel):
    question: str = Field(..., description="The question to ask")
    context: str = Field("", description="The context for the question")
    coworker: str = Field(..., description="The role/name of the coworker to ask")

    @model_validator(mode="before")
    @classmethod
    def _mended(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            mend(data, "question")
        return data


class MendingDelegateTool(DelegateWorkTool, LeanTool):
    args_schema: type[BaseModel] = DelegateArgs


class MendingAskTool(AskQuestionTool, LeanTool):
    args_schema: type[BaseModel] = AskArgs


class Manager(Agent):
    """An ``Agent`` whose delegation tools mend their arguments (CrewAI asks it for them)."""

    def get_delegation_tools(self, agents: Sequence[BaseAgent]) -> list[BaseTool]:
        coworkers = ", ".join(a.role for a in agents)
        texts: Any = I18N_DEFAULT  # CrewAI types tools() loosely
        return [
            MendingDelegateTool(
                agents=list(agents),
                description=texts.tools("delegate_work").format(coworkers=coworkers),
            ),
            MendingAskTool(
                agents=list(agents),
                description=texts.tools("ask_question").format(coworkers=coworkers),
            ),
        ]
