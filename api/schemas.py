"""Request and response bodies (the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# What registration accepts as an email, exactly as the spec states it: one "@", a dotted
# domain, no spaces or control characters. (A stricter validator that refuses reserved
# domains such as ".test" would turn schema-valid requests into 422s.)
# Explicit ranges, not \s: regex dialects disagree on what \s holds (U+0085, say).
_PART = r"[^@ \x00-\x1f\x7f-\x9f.]+"
EMAIL_PATTERN = rf"^[^@ \x00-\x1f\x7f-\x9f]+@{_PART}(\.{_PART})+$"


class Credentials(BaseModel):
    """A registration: the password rules live here, and only here."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=8, max_length=256)


class LoginIn(BaseModel):
    """A login: any email and password are a question; a wrong one is 401, never 422."""

    model_config = ConfigDict(extra="forbid")
    email: str
    password: str


class TokenOut(BaseModel):
    user_id: int
    access_token: str
    token_type: Literal["bearer"] = "bearer"


class ChatStartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, Any] | None = None
    user_id: int | None = Field(
        default=None, description="Optional; accepted only if it equals the token's user."
    )


class SessionEndedOut(BaseModel):
    session_id: str
    ended_at: datetime


class ValidationIssue(BaseModel):
    type: str
    loc: list[str | int]
    msg: str


class ErrorOut(BaseModel):
    """Every error answer of the API: a sentence, or (422) the list of what is invalid."""

    detail: str | list[ValidationIssue]


class ChatStartOut(BaseModel):
    session_id: str
    expires_at: datetime
    user_id: int | None


class ConversationOut(BaseModel):
    session_id: str
    title: str
    created_at: datetime
    last_message: str | None
    message_count: int


class ConversationsOut(BaseModel):
    conversations: list[ConversationOut]


class MemoryOut(BaseModel):
    id: int
    summary: str
    intent: str | None
    entities: list[str]
    message_count: int
    created_at: datetime


class EntityOut(BaseModel):
    type: str
    name: str
    mention_count: int
    last_seen: datetime


class MemoryContextOut(BaseModel):
    user_id: int
    source: Literal["near", "cache", "database"] = Field(
        description="The tier that served this context: near (this API process's "
        "near-cache, kept coherent by Redis; no round trip), cache (Redis) or database "
        "(Postgres)."
    )
    version: int
    memories: list[MemoryOut]
    preferences: dict[str, Any]
    entities: list[EntityOut]


class DeletedOut(BaseModel):
    deleted: bool = True
    version: int


class ComponentStatus(BaseModel):
    status: Literal["up", "down", "disabled"]
    detail: str | None = None


class ReadyOut(BaseModel):
    status: Literal["ready", "degraded"]
    components: dict[str, ComponentStatus]
