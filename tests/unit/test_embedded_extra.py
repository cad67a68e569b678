"""fakeredis and aiosqlite belong to the embedded mode (the ``embedded`` extra).

A Postgres + Redis deployment installs without them: importing and configuring memlayer
must work there, and choosing embedded mode without the extra must say what to install.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from memlayer.cache import make_redis_client
from memlayer.settings import MissingEmbeddedExtra, Settings

WITHOUT_THE_EXTRA = textwrap.dedent(
    """
    import sys
    sys.modules["fakeredis"] = None  # as if not installed: importing it raises ImportError
    sys.modules["aiosqlite"] = None

    from memlayer.api.app import create_app
    from memlayer.cache import make_redis_client
    from memlayer.memory.db import Database
    from memlayer.settings import Settings

    settings = Settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:9/nowhere",
        redis_url="redis://127.0.0.1:9/0",
        jwt_secret="x" * 48,
    )
    create_app(settings)
    make_redis_client(settings)
    Database.from_settings(settings)  # engines connect lazily: nothing is dialled here
    print("configured without the embedded extra")
    """
)


def test_a_postgres_and_redis_deployment_needs_no_embedded_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_EXTRA], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "configured without the embedded extra" in done.stdout


def test_embedded_redis_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)
    with pytest.raises(MissingEmbeddedExtra, match=r"MEMLAYER_REDIS_URL.*memlayer\[embedded\]"):
        make_redis_client(Settings(redis_url=None))


def test_embedded_sqlite_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setitem(sys.modules, "aiosqlite", None)
    settings = Settings(database_url=None, data_dir=tmp_path)
    with pytest.raises(MissingEmbeddedExtra, match=r"MEMLAYER_DATABASE_URL.*memlayer\[embedded\]"):
        settings.resolved_database_url()
