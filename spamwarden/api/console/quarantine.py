"""``/ui/quarantine``: the messages the milter held (Postfix's hold queue), each with
its history entry and three buttons: release, release and learn as not spam, delete.

Forms (each carries ``csrf`` and ``queue_id``; the queue id is checked against
Postfix's queue id alphabet before anything runs, :func:`~spamwarden.quarantine.check_queue_id`):

``POST /ui/quarantine/release``
    ``postsuper -H ID``, then ``postqueue -i ID``: Postfix delivers it now.
``POST /ui/quarantine/release-ham``
    reads the message (``postcat -bh -q ID``, at most ``intake.max_message_bytes``),
    files it as not spam as ``spamwarden learn --ham --user`` does (``quarantine.learn_user``),
    then releases it; nothing is released when learning failed.
``POST /ui/quarantine/delete``
    ``postsuper -d ID hold``.

Each answers ``303`` to ``/ui/quarantine?done=released|learned|deleted&queue_id=ID``;
a bad queue id ``400``; a failed Postfix command ``502`` (``503`` when the
quarantine is not configured) with the error on the page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ...config import Config
from ...errors import QuarantineError, QuarantineUnavailable
from ...quarantine import (
    HeldMessage,
    HoldQueue,
    LearnHam,
    PostfixQueue,
    check_queue_id,
    ham_learner,
    is_queue_id,
    learn_user,
    release_as_ham,
)
from ...reputation.intake import ComplaintIntake
from ...reputation.listings import utc_iso
from ..lookup import escape
from ._base import Console, Page, html_get, html_post, see_other

__all__ = ["NAV", "build", "learn_user", "quarantine_routes"]

NAV = Page("/ui/quarantine", "Quarantine")

_DONE = {
    "released": "Released: Postfix delivers the message now.",
    "learned": "Learned as not spam and released: Postfix delivers the message now.",
    "deleted": "Deleted.",
}


def _plain_intake(cfg: Config, client: Any) -> ComplaintIntake:
    """The intake policy without DKIM re-verification (when the console is built
    without ``make_intake``, as in tests)."""
    from ...reputation.deliveries import RedisDeliveryLookup
    from ...reputation.intake import RedisComplaintStore

    store = RedisComplaintStore(client, seen_ttl=cfg.reputation.window,
                                training_ttl=cfg.reputation.training_ttl)
    return ComplaintIntake(cfg, store, deliveries=RedisDeliveryLookup(client))


def _default_learn(ui: Console) -> LearnHam:
    """The learning path of ``spamwarden learn --ham`` and ``POST /v1/learn``
    (:meth:`~spamwarden.reputation.intake.ComplaintIntake.learn` through the intake
    policy the API gives the console, ``wiring.learner``), built on first use over the
    console's Redis client (:func:`~spamwarden.quarantine.ham_learner`)."""
    return ham_learner(ui.cfg, lambda: (ui.make_intake or _plain_intake)(ui.cfg,
                                                                         ui.store.redis))


def _row(ui: Console, sess: dict[str, Any], m: HeldMessage) -> str:
    qid = escape(m.queue_id)
    more = f" (+{m.rcpt_count - len(m.recipients)})" if m.rcpt_count > len(m.recipients) else ""

    def button(action: str, label: str) -> str:
        return (f'<form method="post" action="/ui/quarantine/{action}" class="{action}" '
                'style="display:inline-block;margin:0 .2rem .2rem 0">'
                f'{ui.csrf_field(sess)}<input type="hidden" name="queue_id" value="{qid}">'
                f'<button type="submit">{label}</button></form>')

    history = "/ui/history?" + urlencode({"queue_id": m.queue_id})
    return (f'<tr data-queue-id="{qid}"><td><a href="{escape(history)}">{qid}</a></td>'
            f"<td>{escape(utc_iso(m.arrival_time))}</td>"
            f"<td>{escape(m.sender or '<>')}</td>"
            f"<td>{escape(', '.join(m.recipients) + more)}</td><td>{m.size}</td><td>"
            + button("release", "Release") + button("release-ham", "Learn as not spam, release")
            + button("delete", "Delete") + "</td></tr>")


def quarantine_routes(ui: Console, routes: web.RouteTableDef, *, queue: HoldQueue,
                      learn: LearnHam) -> dict[str, Any]:
    """Add the quarantine's routes over ``queue`` and ``learn``; return their OpenAPI paths.

    :param ui: the console.
    :param routes: where the routes go.
    :param queue: the hold queue (:class:`~spamwarden.quarantine.PostfixQueue`).
    :param learn: files a message as not spam (the ``spamwarden learn --ham`` path).
    """
    max_bytes = ui.cfg.intake.max_message_bytes

    async def listing(sess: dict[str, Any], *, notice: str = "", error: str = "",
                      status: int = 200) -> web.Response:
        top = (f'<p class="ok">{escape(notice)}</p>\n' if notice else "") + (
            f'<p class="err">{escape(error)}</p>\n' if error else "")
        try:
            held = await queue.held()
        except QuarantineUnavailable as exc:
            body = top + ('<p class="err" id="not-configured">The quarantine is not '
                          f"configured: {escape(exc)}. See [quarantine] in the "
                          "configuration and docs/operations.md.</p>\n")
            return ui.page("Quarantine", body, sess=sess, status=status)
        except QuarantineError as exc:
            body = top + f'<p class="err">Cannot list the hold queue: {escape(exc)}</p>\n'
            return ui.page("Quarantine", body, sess=sess, status=502 if status == 200 else status)
        rows = "".join(_row(ui, sess, m) for m in held)
        body = top + (
            "<p>Messages the milter held (action quarantine) wait in Postfix's hold queue "
            "until released or deleted.</p>\n"
            '<table id="held"><tr><th>queue id</th><th>arrived</th><th>sender</th>'
            f"<th>recipients</th><th>bytes</th><th></th></tr>{rows}</table>\n"
            f"<p>{len(held)} message(s) held"
            + (f" (the first {len(held)} shown)" if len(held) >= ui.cfg.quarantine.max_messages
               else "") + ".</p>\n")
        return ui.page("Quarantine", body, sess=sess, status=status)

    @routes.get("/ui/quarantine")
    async def page(request: web.Request) -> web.StreamResponse:
        sess = await ui.require(request)
        done, qid = request.query.get("done", ""), request.query.get("queue_id", "")
        notice = ""
        if done in _DONE and is_queue_id(qid):
            notice = f"{qid}: {_DONE[done]}"
        return await listing(sess, notice=notice)

    def action(name: str, done: str,
               run: Callable[[str], Awaitable[str | None]]) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            sess = await ui.require(request)
            form = await ui.form(request, sess)
            raw_id = str(form.get("queue_id", ""))[:64]
            try:
                qid = check_queue_id(raw_id)
            except QuarantineError:
                return await listing(sess, error=f"{raw_id!r} is not a Postfix queue id.",
                                     status=400)
            try:
                refused = await run(qid)
            except QuarantineUnavailable as exc:
                return await listing(sess, error=f"{qid}: the quarantine is not configured: "
                                     f"{exc}", status=503)
            except QuarantineError as exc:
                return await listing(sess, error=f"{qid}: {exc}", status=502)
            if refused:
                return await listing(sess, error=f"{qid}: not learned, not released: {refused}",
                                     status=422)
            return see_other("/ui/quarantine?" + urlencode({"done": done, "queue_id": qid}))

        handler.__name__ = name.replace("-", "_")
        routes.post(f"/ui/quarantine/{name}")(handler)

    async def release(qid: str) -> str | None:
        await queue.release(qid)
        return None

    async def delete(qid: str) -> str | None:
        await queue.delete(qid)
        return None

    async def release_ham(qid: str) -> str | None:
        return await release_as_ham(queue, qid, learn=learn, max_bytes=max_bytes)

    action("release", "released", release)
    action("release-ham", "learned", release_ham)
    action("delete", "deleted", delete)

    return {
        "/ui/quarantine": html_get("Held messages (Postfix's hold queue)", "consoleQuarantine",
                                   query=("done", "queue_id")),
        "/ui/quarantine/release": html_post(
            "Release a held message (form fields csrf, queue_id)", "consoleQuarantineRelease"),
        "/ui/quarantine/release-ham": html_post(
            "Learn a held message as not spam, then release it (form fields csrf, queue_id)",
            "consoleQuarantineReleaseHam"),
        "/ui/quarantine/delete": html_post(
            "Delete a held message (form fields csrf, queue_id)", "consoleQuarantineDelete"),
    }


def build(ui: Console, routes: web.RouteTableDef) -> dict[str, Any]:
    """Add the quarantine routes over Postfix (``[quarantine]``); return their OpenAPI paths."""
    return quarantine_routes(ui, routes, queue=PostfixQueue(ui.cfg.quarantine),
                             learn=_default_learn(ui))
