"""The store's record of buttons pressed in chats, and the message lookups they need.

Mixed into the SQL stores (DuckDB, PostgreSQL; ClickHouse overrides the insert). A press is
recorded once, by its id (the channel and its update id), in the same transaction as what it
does, so a crash before the commit leaves it to be fetched and done again, and one after it
is never done twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vigil.model import ChatAction, Notification
from vigil.timeutil import as_utc, to_naive_utc

_COLUMNS = "id, channel, seq, message_key, action, actor, outcome, created_at"


def action_row(action: ChatAction) -> dict[str, Any]:
    """The row of one press, by column."""
    return {
        "id": action.id,
        "channel": action.channel,
        "seq": action.seq,
        "message_key": action.message_key,
        "action": action.action,
        "actor": action.actor,
        "outcome": action.outcome,
        "created_at": to_naive_utc(action.created_at),
    }


class ChatActionsMixin:
    """Chat actions on a store with `_rows` and `_run` (see SQLStore)."""

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _run(self, sql: str, params: Iterable[Any] = ()) -> Any:
        raise NotImplementedError

    def record_action(self, action: ChatAction) -> bool:
        """Record a press; False when it was recorded before (and nothing may be done again)."""
        if self._rows("SELECT 1 FROM chat_actions WHERE id = ?", [action.id]):
            return False
        row = action_row(action)
        self._run(
            f"INSERT INTO chat_actions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            list(row.values()),
        )
        return True

    def list_actions(self, message_key: str | None = None) -> list[ChatAction]:
        """Presses, oldest first (of one message, when given)."""
        where, params = ("WHERE message_key = ?", [message_key]) if message_key else ("", [])
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM chat_actions {where} ORDER BY created_at, id", params
        )
        return [
            ChatAction(r[0], r[1], int(r[2]), r[3], r[4], r[5], r[6], as_utc(r[7])) for r in rows
        ]

    def last_action_seq(self, channel: str) -> int | None:
        """The newest update number recorded for the channel (polling resumes after it)."""
        rows = self._rows("SELECT max(seq) FROM chat_actions WHERE channel = ?", [channel])
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def find_message(self, channel: str, remote_ref: str) -> Notification | None:
        """The sent message that the channel knows by `remote_ref` (its message id)."""
        found = [
            n
            for n in self.messages_by_ref(channel, remote_ref)
            if n.kind in ("alert", "incident") and not n.reply_to
        ]
        return found[0] if found else None

    def messages_by_ref(self, channel: str, remote_ref: str) -> list[Notification]:
        """Every notification of the channel with that message id."""
        raise NotImplementedError

    def amend_message(self, key: str, text: str, html: str) -> None:
        """Replace a sent message's text (it was edited in the chat: a later edit builds on
        what it says now)."""
        self._run("UPDATE notifications SET text = ?, html = ? WHERE key = ?", [text, html, key])
