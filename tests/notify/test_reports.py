"""Reports: a scheduled summary by email (aiosmtpd) and Telegram (the stand-in), sent once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from click.testing import CliRunner

from tests.conftest import VIGIL_YAML, ProjectFactory, TelegramStandIn, is_png
from tests.notify.conftest import Inbox
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.cli import main
from vigil.notify.pipeline import deliver_outbox
from vigil.notify.reports import due, queue_due
from vigil.scheduler.backfill import run_backfill

NOW = DROP + timedelta(hours=1)
CHANNELS = (
    "  mail: {type: email, host: 127.0.0.1, port: %d, security: none,"
    " sender: vigil@example.com, to: [team@example.com]}\n"
    "  tg: {type: telegram, token: '1:t', chat_id: '7', api_url: '%s'}\n"
)
REPORT = """\
reports:
  - id: morning
    title: Morning summary
    cron: "0 13 * * *"
    channels: [mail, tg]
    metrics: [actions]
    segments: all
"""


def _app(project_dir: ProjectFactory, port: int, telegram: TelegramStandIn) -> Any:
    with_drop(project_dir, buckets=4)
    console = "  console: {type: console}\n"
    vigil = VIGIL_YAML.replace(console, console + CHANNELS % (port, telegram.url)) + REPORT
    app, _ = app_for(project_dir.write({"vigil.yaml": vigil}))
    app.clock.set(NOW)
    run_backfill(app, NOW - timedelta(days=2), NOW)  # values and results of two days
    return app


def test_a_report_goes_out_by_email_and_telegram_once_at_its_time(
    project_dir: ProjectFactory,
    smtp: tuple[Inbox, int],
    telegram: TelegramStandIn,
) -> None:
    inbox, port = smtp
    app = _app(project_dir, port, telegram)
    (fired,) = due(app.project, NOW - timedelta(hours=1), NOW)  # 13:00 today
    assert fired[1] == NOW.replace(hour=13, minute=0)
    assert queue_due(app.project, app.store, NOW - timedelta(hours=1), NOW) == 2
    deliver_outbox(app.store, app.channels, app.project.secrets, NOW)
    # The same window again (a restart, a second process): nothing more.
    queue_due(app.project, app.store, NOW - timedelta(hours=1), NOW)
    deliver_outbox(app.store, app.channels, app.project.secrets, NOW)
    ((_, recipients, message),) = inbox.messages
    assert recipients == ["team@example.com"]
    assert message["Subject"].startswith("[info] Morning summary — ")
    parts = {p.get_content_type(): p for p in message.walk()}
    body = parts["text/html"].get_payload(decode=True).decode()
    assert "<th>Newest</th>" in body
    assert "<td>os=iOS</td>" in body
    assert is_png(parts["image/png"].get_payload(decode=True))  # the sparklines, inline
    plain = parts["text/plain"].get_payload(decode=True).decode()
    # The drop's last bucket: 20% of the iOS 10 actions; a day earlier, 10.
    assert "• Actions · os=iOS: 2 (-80.0% vs a day ago" in plain
    assert "4 anomalies" in plain
    methods = [c.method for c in telegram.calls]
    assert methods == ["sendMessage", "sendPhoto"]
    assert telegram.calls[0].fields["text"].startswith("<b>📊 Morning summary</b>")
    assert "reply_markup" not in telegram.calls[0].fields  # a report has no action buttons


def test_vigil_report_send_sends_it_now(
    project_dir: ProjectFactory,
    smtp: tuple[Inbox, int],
    telegram: TelegramStandIn,
) -> None:
    inbox, port = smtp
    app = _app(project_dir, port, telegram)
    app.close()
    root = str(project_dir.root)
    at = NOW.strftime("%Y-%m-%dT%H:%M")
    sent = CliRunner().invoke(main, ["--project", root, "report", "send", "morning", "--at", at])
    assert sent.exit_code == 0, sent.output
    assert "Report morning: 2 sent, 0 failed." in sent.output
    assert len(inbox.messages) == 1
    unknown = CliRunner().invoke(main, ["--project", root, "report", "send", "evening"])
    assert "unknown report 'evening'; expected one of: morning" in unknown.output
