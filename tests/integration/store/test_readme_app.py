"""The README's LangGraph app, run exactly as written: on the embedded default (no
configuration) and on Postgres + Redis through MEMLAYER_DATABASE_URL and MEMLAYER_REDIS_URL."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memlayer.settings import Settings

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_app() -> str:
    text = README.read_text()
    block = re.search(
        r"<!-- store-app:start -->\s*```python\n(.*?)```\s*<!-- store-app:end -->", text, re.S
    )
    assert block is not None, "the README lost its store-app block"
    return block.group(1)


@pytest.mark.parametrize("where", ["embedded", "postgres"])
async def test_the_readme_app_runs(
    where: str, tmp_path: Path, store_url: str, cached_settings: Settings
) -> None:
    env = {"PATH": "/usr/bin:/bin", "MEMLAYER_DATA_DIR": str(tmp_path / "data")}
    if where == "postgres":
        env["MEMLAYER_DATABASE_URL"] = store_url
        env["MEMLAYER_REDIS_URL"] = str(cached_settings.redis_url)
        env["MEMLAYER_CACHE_KEY_PREFIX"] = cached_settings.cache_key_prefix
    (tmp_path / "app.py").write_text(readme_app())
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "I remember 1 thing(s) about you"
    assert (tmp_path / "data" / "memlayer.db").exists() is (where == "embedded")
