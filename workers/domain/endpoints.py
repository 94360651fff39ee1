"""A model's name and stable inference URL on an online runtime, without loading any serving library
(``find-runtimes`` runs in the light worker group)."""

from __future__ import annotations

import re

__all__ = ["inference_url", "served_name"]


def served_name(model: str) -> str:
    """The name MLServer serves every version of ``model`` under (and its repository folder's name)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-.") or "model"


def inference_url(endpoint: str | None, served: str | None) -> str | None:
    """The model's stable V2 inference URL on ``endpoint``: it answers with whichever version is in service."""
    return f"{endpoint}/v2/models/{served}/infer" if endpoint and served else None
