"""Dark Factory's texts for CrewAI's prompt slices and delegation tools (``prompts.json``).

``lean_prompts()`` puts them in place of CrewAI's own while a crew runs, then restores them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crewai.hooks import register_after_tool_call_hook, unregister_after_tool_call_hook
from crewai.utilities.i18n import I18N_DEFAULT

from darkfactory.crews.texts import OURS, prompt_file


@functools.cache
def overrides() -> dict[str, dict[str, str]]:
    """The CrewAI texts ``prompts.json`` replaces, by kind (``slices``, ``tools``) and key;
    ``slices.tools_reminder`` (ours) is for the tool list CrewAI repeats every 3rd tool use."""
    return {kind: texts for kind, texts in prompt_file().items() if kind != OURS}


@contextmanager
def lean_prompts() -> Iterator[None]:
    """Use ``prompts.json``'s texts for CrewAI's prompts inside the block.

    CrewAI 1.15 reads every slice from one shared ``I18N_DEFAULT`` (``Crew(prompt_file=)``
    only names the default manager), so the texts are swapped in for the kickoff and the
    originals put back after it: a stock crew in the same process keeps CrewAI's prompts.
    """
    prompts = I18N_DEFAULT._prompts
    saved = {kind: dict(prompts[kind]) for kind in overrides()}
    try:
        for kind, texts in overrides().items():
            prompts[kind].update(texts)
        register_after_tool_call_hook(shorter_reminder)
        yield
    finally:
        unregister_after_tool_call_hook(shorter_reminder)
        for kind, texts in saved.items():
            prompts[kind].clear()
            prompts[kind].update(texts)


def shorter_reminder(context: Any) -> str | None:
    """Every 3rd tool result, CrewAI appends the whole ``tools`` slice: the tool list, which
    the system prompt already holds, and the format. Keep only the format, as a reminder.
    """
    result, slices = context.tool_result, overrides()["slices"]
    if not isinstance(result, str):
        return None
    head, tail = slices["tools"].split("{tools}")
    at = result.rfind("\n\n" + head)
    if at < 0 or not result.endswith(tail.split("{tool_names}")[1]):
        return None
    names = re.search(r"\[(.*?)\]", result[at:].rsplit(tail.split("[")[0], 1)[-1])
    tool_names = names.group(1) if names else ""
    return result[:at] + slices["tools_reminder"].format(tool_names=tool_names)
