"""Atlassian Document Format: the rich text of Jira Cloud's descriptions and comments, to and from text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_INLINE_NODES = frozenset({"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status"})


def text_to_adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document: one paragraph per non-empty line."""
    paragraphs = [{"type": "paragraph", "content": [{"type": "text", "text": line}]}
                  for line in text.splitlines() if line.strip()]
    return {"type": "doc", "version": 1, "content": paragraphs}


def adf_to_text(document: Mapping[str, Any]) -> str:
    """The text of an Atlassian Document: one line per paragraph (or other block that holds text)."""
    return "\n".join(_block_lines(document))


def _block_lines(node: Mapping[str, Any]) -> list[str]:
    children = [child for child in node.get("content") or [] if isinstance(child, Mapping)]
    if any(child.get("type") in _INLINE_NODES for child in children):
        return ["".join(_inline_text(child) for child in children)]
    return [line for child in children for line in _block_lines(child)]


def _inline_text(node: Mapping[str, Any]) -> str:
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    attrs = node.get("attrs") or {}
    return str(attrs.get("text") or attrs.get("shortName") or attrs.get("url") or "")


def text_for(value: Any, api_version: str) -> Any:
    """A description or comment as API version ``api_version`` shows it: a document in "3", text in "2"."""
    if value is None:
        return None
    if api_version == "3":
        return value if isinstance(value, Mapping) else text_to_adf(str(value))
    return adf_to_text(value) if isinstance(value, Mapping) else value
