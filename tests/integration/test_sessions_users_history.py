"""SessionManager, local auth and chat history on Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from memlayer.memory.errors import BadCredentials, EmailTaken, UnknownUser
from memlayer.memory.history import ChatHistory, title_from
from memlayer.memory.models import LocalAuth, Session
from memlayer.memory.sessions import SessionManager
from memlayer.memory.users import UserStore


async def _expire(database, session_id: str) -> None:
    async with database.transaction() as db:
        await db.execute(
            update(Session)
            .where(Session.session_id == session_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_session_lifecycle(database, make_user):
    manager = SessionManager(database)
    uid = await make_user()
    session_id, expires_at = await manager.create_session(uid, {"client": "web"})
    assert session_id.startswith("session-")
    info = await manager.get_session(session_id)
    assert info.user_id == uid and isinstance(info.user_id, int)
    assert info.metadata == {"client": "web"}
    assert expires_at - info.created_at == timedelta(hours=24)
    assert await manager.validate_session(session_id)
    assert await manager.touch(session_id) and await manager.touch(session_id)
    touched = await manager.get_session(session_id)
    assert touched.request_count == 2 and touched.last_activity >= info.last_activity
    assert await manager.delete_session(session_id)
    assert not await manager.validate_session(session_id)


async def test_anonymous_session_has_no_user(database):
    session_id, _ = await SessionManager(database).create_session(None)
    assert (await SessionManager(database).get_session(session_id)).user_id is None


async def test_session_for_unknown_user_is_refused(database):
    with pytest.raises(UnknownUser):
        await SessionManager(database).create_session(10**9)


async def test_expired_sessions_do_not_validate_and_are_cleaned_up(database):
    manager = SessionManager(database, ttl=timedelta(hours=1))
    expired, _ = await manager.create_session(None)
    alive, _ = await manager.create_session(None)
    await _expire(database, expired)
    assert not await manager.validate_session(expired)
    assert not await manager.touch(expired)
    assert await manager.validate_session(alive)
    assert await manager.cleanup_expired() >= 1
    async with database.sessionmaker() as db:
        assert await db.get(Session, expired) is None
        assert await db.get(Session, alive) is not None


async def test_register_and_login_store_only_an_argon2_hash(database):
    store = UserStore(database)
    user = await store.register("Kim@Example.test", "correct horse battery")
    assert (await store.authenticate("kim@example.test", "correct horse battery")).id == user.id
    async with database.sessionmaker() as db:
        stored = await db.scalar(
            select(LocalAuth.password_hash).where(LocalAuth.user_id == user.id)
        )
    assert stored.startswith("$argon2") and "correct horse" not in stored
    with pytest.raises(BadCredentials):
        await store.authenticate("kim@example.test", "wrong")
    with pytest.raises(BadCredentials):
        await store.authenticate("nobody@example.test", "whatever")
    with pytest.raises(EmailTaken):
        await store.register("kim@example.test", "another password")


async def test_history_lists_own_conversations_newest_first(database, make_user):
    history = ChatHistory(database)
    alice, bob = await make_user(), await make_user()
    first = await history.start_conversation(alice, "강남구 아파트 시세가 궁금해요 요즘 어떤가요")
    await history.append_turn(first, "강남구 아파트 시세", "최근 시세는 ...")
    second = await history.start_conversation(alice, "전세 대출")
    assert await history.append_turn(second, "전세 대출 한도", "한도는 ...") == 2
    await history.start_conversation(bob, "bob's")
    listed = await history.list_conversations(alice, 10)
    assert [c.session_id for c in listed] == [second, first]
    assert listed[0].last_message == "한도는 ..." and listed[0].message_count == 2
    assert len(listed[1].title) <= 20
    assert len(await history.list_conversations(alice, 1)) == 1


def test_titles_fit_the_column():
    assert title_from("짧은 제목") == "짧은 제목"
    assert len(title_from("가" * 50)) == 20
