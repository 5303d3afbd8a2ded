"""The Dockerfile, checked statically (no Docker engine needed): stages, base image, user, health
check, that every COPY source exists and is not excluded by .dockerignore, and the inline
requirements step run for real."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.deploy.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with line continuations joined and heredoc bodies kept."""
    out: list[tuple[str, str]] = []
    lines = DOCKERFILE.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:
            body = []
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            line += "\n" + "\n".join(body)
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _args() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M)}


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes; a match on a parent
    directory excludes everything below it."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        rx = fnmatch.translate(p.replace("**/", "*/").replace("**", "*"))
        if any(
            re.match(rx, c) or (p.startswith("**/") and re.match(fnmatch.translate(p[3:]), c.split("/")[-1]))
            for c in candidates
        ):
            verdict = not neg
    return verdict


def _dockerignore() -> list[str]:
    return [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]


def test_multi_stage_slim_base_non_root_healthcheck() -> None:
    stages = _stages()
    assert len(stages) >= 2, "the image is built in (at least) two stages"
    base = _args().get("PYTHON_IMAGE")
    froms = [s[0][1].replace("${PYTHON_IMAGE}", base or "") for s in stages]
    assert all(f.startswith("python:3.11-slim") for f in froms), froms
    final = stages[-1]
    final_text = "\n".join(a for _, a in final)
    assert "build-essential" in "\n".join(a for _, a in stages[0]), "the build stage may compile wheels"
    assert not re.search(r"build-essential|gcc|apt-get install", final_text), "no build tools in the final image"
    assert any(w == "COPY" and "--from=build" in a and "/opt/venv" in a for w, a in final), (
        "the final stage copies the venv"
    )
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1] not in ("root", "0"), "the final image runs as an unprivileged user"
    health = [a for w, a in final if w == "HEALTHCHECK"]
    assert health and re.search(r'"trader",\s*"health"', health[-1]), "HEALTHCHECK via `trader health`"
    env = " ".join(a for w, a in final if w == "ENV")
    assert "OMS_CONFIG=/app/config/oms.yaml" in env and "TRADER_CONFIG_DIR=/app/config" in env, (
        "an installed package cannot find config/ by itself"
    )
    cmd = [a for w, a in final if w == "CMD"][-1]
    assert re.sub(r"\s", "", cmd) == '["trader","oms","--host","0.0.0.0","--port","8000"]'


def test_copy_sources_exist_and_are_in_the_build_context() -> None:
    patterns = _dockerignore()
    assert _ignored(".env", patterns) and _ignored(".venv/bin/python", patterns), (
        ".env and .venv stay out of the context"
    )
    assert _ignored("tests/unit/test_clock.py", patterns)
    for stage in _stages():
        for word, args in stage:
            if word != "COPY" or "--from=" in args:
                continue
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for src in sources:
                path = REPO / src.rstrip("/")
                assert path.exists(), f"COPY {src}: not in the repository"
                files = (
                    [path]
                    if path.is_file()
                    else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
                )
                for f in files:
                    rel = f.relative_to(REPO).as_posix()
                    assert not _ignored(rel, patterns), f"COPY {src}: {rel} is excluded by .dockerignore"


def test_requirements_step_reads_pyproject(tmp_path: Path) -> None:
    run = next(a for w, a in _instructions() if w == "RUN" and "tomllib" in a)
    script = run.split("\n", 1)[1]
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EXTRAS": _args()["EXTRAS"]},
        check=True,
    ).stdout.split()
    assert any(r.startswith("fastapi") for r in out) and any(r.startswith("asyncpg") for r in out)
    assert any(r.startswith("alpaca-py") for r in out), "the image carries the alpaca extra (profile alpaca)"
    assert not any(r.startswith("pytest") for r in out), "test tools stay out of the image"


def test_strategy_health_probe_is_in_the_image() -> None:
    assert "COPY scripts/strategy_health.py /app/scripts/strategy_health.py" in DOCKERFILE.read_text()
    compose = (REPO / "docker-compose.vps1.yml").read_text()
    assert '"/app/scripts/strategy_health.py"' in compose
