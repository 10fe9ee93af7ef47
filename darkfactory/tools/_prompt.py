"""How a tool is shown to a model that calls tools in text: name, arguments, description.

``LeanTool`` is a CrewAI ``BaseTool`` whose prompt block is ``tool_prompt``'s, not CrewAI's.
"""

from __future__ import annotations

import json
from typing import Any

from crewai.tools import BaseTool
from crewai.tools.structured_tool import CrewStructuredTool
from crewai.utilities.pydantic_schema_utils import generate_model_description
from crewai.utilities.string_utils import sanitize_tool_name
from pydantic import BaseModel


def tool_prompt(name: str, args_schema: type[BaseModel] | None, description: str) -> str:
    """The tool's block in a text prompt: its JSON schema on one line, then what it does.

    CrewAI's own block (``format_description_for_llm``) indents the schema and lists every
    argument as required (OpenAI's strict mode); a model calling in text is better told
    which arguments it may leave out. Agents that call tools natively get the schema from
    the request instead, and never read this.
    """
    schema: dict[str, Any] = {}
    if args_schema is not None:
        full = generate_model_description(args_schema)["json_schema"]["schema"]
        required = [k for k, f in args_schema.model_fields.items() if f.is_required()]
        # A title repeats the name; a default of null says nothing the description does not.
        schema = {
            "properties": {
                key: {
                    k: v
                    for k, v in prop.items()
                    if k != "title" and not (k == "default" and v is None)
                }
                for key, prop in full.get("properties", {}).items()
            }
        }
        if required:
            schema["required"] = required
    return (
        f"Tool Name: {sanitize_tool_name(name)}\n"
        f"Tool Arguments: {json.dumps(schema, ensure_ascii=False)}\n"
        f"Tool Description: {description}"
    )


class LeanStructuredTool(CrewStructuredTool):
    """CrewAI's structured tool, shown to the model by ``tool_prompt``."""

    @property
    def formatted_description(self) -> str:
        return tool_prompt(self.name, self.args_schema, self.description)


class LeanTool(BaseTool):
    """A CrewAI tool whose prompt block is ``tool_prompt``'s (the agent sees it in every call)."""

    def to_structured_tool(self) -> CrewStructuredTool:
        tool = super().to_structured_tool()
        lean = LeanStructuredTool(
            **{field: getattr(tool, field) for field in CrewStructuredTool.model_fields}
        )
        lean._original_tool = tool._original_tool
        return lean
