"""Tool packs for MENTOR: tools with derived schemas, tasks, verifiers, scripted experts.

Main entry points: ``get_pack``/``list_packs`` to find a pack, ``parse_tool_calls``
and ``extract_boxed`` to read model output, ``execute_call``/``ToolEnv`` to run
calls safely, ``run_episodes`` for batched multi-turn episodes.
"""

from components.tools.base import Task, ToolEnv, ToolPack
from components.tools.episode import Episode, run_episode, run_episodes
from components.tools.executor import ToolErrorKind, ToolResult, execute_call
from components.tools.parser import (
    ParseError,
    ParseErrorKind,
    ParseResult,
    ToolCall,
    extract_boxed,
    parse_tool_calls,
    render_assistant_text,
)
from components.tools.registry import get_pack, list_packs
from components.tools.sample import format_task_sample
from components.tools.tool import Tool, tool_from_function

__all__ = [
    "Episode",
    "ParseError",
    "ParseErrorKind",
    "ParseResult",
    "Task",
    "Tool",
    "ToolCall",
    "ToolEnv",
    "ToolErrorKind",
    "ToolPack",
    "ToolResult",
    "execute_call",
    "extract_boxed",
    "format_task_sample",
    "get_pack",
    "list_packs",
    "parse_tool_calls",
    "render_assistant_text",
    "run_episode",
    "run_episodes",
    "tool_from_function",
]
