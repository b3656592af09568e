"""Replay a few events on top of a stored aggregate state (the bounded replay of as-of queries).

``apply_events(state, events)`` continues a fold: given the state after the events
up to some version and events with *higher* versions, it returns the state the
full fold would give. The same rules as ``fold.py``, one event at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

PLAIN_FIELDS = {
    "account": ("display_name", "handle", "did", "platform", "created_at"),
    "room": ("name", "platform", "server_id", "server_name", "topic", "created_at"),
}


def apply_events(aggregate_type: str, state: dict | None, events: Iterable[dict]) -> dict | None:
    """The state after applying ``events`` (applied, known, versions above the state's)."""
    state = None if state is None else {**state}
    for event in sorted(events, key=lambda e: e["version"]):
        if state is not None and event["version"] <= state["version"]:
            raise ValueError("events must continue the state: versions above the state's only")
        state = _APPLY[aggregate_type](state, event)
    return state


def _message(state: dict | None, e: dict) -> dict | None:
    kind = e["event_type"]
    if state is None:
        if kind != "MessageCreated":
            return None  # an orphan before the creation: ignored (fold counts it too)
        state = {
            "message_id": e["aggregate_id"],
            "version": e["version"],
            "account_id": e["account_id"],
            "room_id": e["room_id"],
            "platform": e["platform"],
            "platform_id": e["platform_id"],
            "url": e["url"],
            "explicit_thread_id": e["thread_id"],
            "reply_to": e["reply_to"],
            "kind": e["kind"],
            "created_at": e["created_at"],
            "schema_version": e["schema_version"],
            "author_did": e["author_did"],
            "imported_at": e["imported_at"],
            "tags": e["tags"],
            "attachments": e["attachments"],
            "content_cid": e["content_cid"],
            "body_inline": e["body_inline"],
            "deleted": False,
            "deleted_at": None,
            "delete_reason": None,
            "edit_count": 0,
            "last_edited_at": None,
            "edit_times": [],
            "reactions_current": [],
            "reaction_adds": [],
            "ignored_events": 0,
        }
        return state
    state["version"] = e["version"]
    if kind == "MessageCreated" or state["deleted"]:
        state["ignored_events"] += 1
    elif kind == "MessageEdited":
        state.update(content_cid=e["content_cid"], body_inline=None, last_edited_at=e["edited_at"])
        state["edit_count"] += 1
        state["edit_times"] = [*state["edit_times"], e["edited_at"]]
    elif kind == "MessageDeleted":
        state.update(deleted=True, deleted_at=e["deleted_at"], delete_reason=e["reason"])
    else:
        pair = {"account_id": e["account_id"], "emoji": e["emoji"]}
        present = pair in state["reactions_current"]
        if kind == "ReactionAdded" and not present:
            state["reactions_current"] = sorted(
                [*state["reactions_current"], pair], key=lambda p: (p["account_id"], p["emoji"])
            )
            state["reaction_adds"] = [*state["reaction_adds"], {**pair, "at": e["at"]}]
        elif kind == "ReactionRemoved" and present:
            state["reactions_current"] = [p for p in state["reactions_current"] if p != pair]
    return state


def _fields(aggregate_type: str, id_column: str, created_type: str):
    def apply(state: dict | None, e: dict) -> dict:
        if state is None:
            state = {id_column: e["aggregate_id"], "version": 0, "created": False}
            state.update(dict.fromkeys(PLAIN_FIELDS[aggregate_type]))
            if aggregate_type == "room":
                state.update(type=None, members=[])
        state = {**state, "version": e["version"]}
        state["created"] = state["created"] or e["event_type"] == created_type
        for name in PLAIN_FIELDS[aggregate_type]:
            if e.get(name) is not None:
                state[name] = e[name]
        if aggregate_type == "room":
            if e.get("room_type") is not None:
                state["type"] = e["room_type"]
            members = set(state["members"])
            if e["event_type"] == "MemberJoined":
                members.add(e["account_id"])
            elif e["event_type"] == "MemberLeft":
                members.discard(e["account_id"])
            state["members"] = sorted(members)
        return state

    return apply


def _read_marker(state: dict | None, e: dict) -> dict:
    return {
        "marker_id": e["aggregate_id"],
        "version": e["version"],
        "account_id": e["account_id"],
        "room_id": e["room_id"],
        "read_up_to": e["read_up_to"],
    }


_APPLY = {
    "message": _message,
    "account": _fields("account", "account_id", "AccountCreated"),
    "room": _fields("room", "room_id", "RoomCreated"),
    "read_marker": _read_marker,
}
