"""The Dockerfile read as the image builder reads it."""

from __future__ import annotations

import shlex

from tests.support import ROOT


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuations joined and comments dropped."""
    instructions, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def instruction(name: str) -> list[str]:
    return [rest for keyword, rest in dockerfile() if keyword == name]


def image_env() -> dict[str, str]:
    """ENV of the final stage."""
    stages = [i for i, (keyword, _) in enumerate(dockerfile()) if keyword == "FROM"]
    env: dict[str, str] = {}
    for keyword, rest in dockerfile()[stages[-1]:]:
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env
