"""Email over SMTP: multipart/alternative text and HTML, the chart as an inline image."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from vigil.config.schema import EmailChannelConfig
from vigil.errors import NotifyError
from vigil.model import Notification
from vigil.notify.channels import Progress

PERMANENT = (
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPNotSupportedError,
)


def build_email(notification: Notification, sender: str, to: list[str]) -> EmailMessage:
    """The message: subject = title, plain text, HTML with the chart inline (cid)."""
    message = EmailMessage()
    message["Subject"] = f"[{notification.severity or 'alert'}] {notification.title}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["X-Vigil-Key"] = notification.key
    message.set_content(notification.text)
    chart_id = make_msgid(domain="vigil.local")
    lines = "".join(f"<p>{html.escape(line)}</p>" for line in notification.text.splitlines()[1:])
    if notification.kind == "report":  # a report's own HTML: its table
        lines = notification.html.split("\n", 1)[-1]
    image = f'<p><img src="cid:{chart_id[1:-1]}" alt="chart"></p>' if notification.image else ""
    body = f"<html><body><h3>{html.escape(notification.title)}</h3>{lines}{image}</body></html>"
    message.add_alternative(body, subtype="html")
    html_part = message.get_body(preferencelist=("html",))
    if notification.image and html_part is not None:
        html_part.add_related(notification.image, "image", "png", cid=chart_id)
    return message


class EmailChannel:
    """Sends one email per notification."""

    idempotent = False

    def __init__(self, name: str, config: EmailChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """Connect, secure, log in if configured, send."""
        cfg = self.config
        message = build_email(notification, cfg.sender, cfg.to)
        timeout = cfg.timeout.total_seconds()
        try:
            smtp: smtplib.SMTP
            context = ssl.create_default_context(cafile=cfg.ca_file)
            if cfg.security == "ssl":
                smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=context)
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
            with smtp:
                if cfg.security == "starttls":
                    smtp.starttls(context=context)
                if cfg.username:
                    password = cfg.password.get_secret_value() if cfg.password else ""
                    smtp.login(cfg.username, password)
                smtp.send_message(message)
        except PERMANENT as e:
            raise NotifyError(
                f"email {self.name}: {type(e).__name__}: {e}", retryable=False
            ) from None
        except (smtplib.SMTPException, OSError) as e:
            raise NotifyError(f"email {self.name}: {type(e).__name__}: {e}") from None
        return 1
