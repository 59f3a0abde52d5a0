"""Where notifications go: one configuration model per channel type."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from vigil.config.schema.types import Base, Duration


class _Delivered(Base):
    """What every channel that can fail shares."""

    max_attempts: int = Field(
        10,
        ge=1,
        le=1000,
        description="Give up on a notification after this many failed deliveries (retries"
        " back off exponentially, up to an hour apart, or as the server's Retry-After says).",
    )


class ConsoleChannelConfig(Base):
    """Print alerts to standard output."""

    type: Literal["console"] = Field(description="Channel backend.")


class TelegramChannelConfig(_Delivered):
    """Telegram Bot API: sendMessage with the alert text, sendPhoto with the chart."""

    type: Literal["telegram"] = Field(description="Channel backend.")
    token: SecretStr = Field(description="Bot token; give it as ${ENV_VAR}, never inline.")
    chat_id: str = Field(description="Chat, group or channel id (or @channelname).")
    api_url: str = Field(
        "https://api.telegram.org", description="Bot API base URL (a local stand-in in tests)."
    )
    message_thread_id: int | None = Field(
        None, description="Forum topic to post in (supergroups with topics)."
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")
    actions: bool = Field(
        True,
        description="Buttons under each alert and incident message (Acknowledge, Silence 1 h /"
        " 4 h / until tomorrow, False alarm, Expected), read by `vigil run` and `vigil check`"
        " with getUpdates. Off for a bot whose updates go to a webhook of its own.",
    )
    allowed_users: list[str] = Field(
        default_factory=list,
        description="Who may press them: @usernames or numeric user ids (default: anyone in"
        " the chat).",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Instead of polling: the secret_token given to setWebhook, from"
        " ${ENV_VAR}; Telegram then posts presses to the dashboard's"
        " POST /telegram/<channel>/updates, which checks it.",
    )

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class WebhookChannelConfig(_Delivered):
    """POST a JSON document per notification (see docs/channels.md), optionally HMAC-signed."""

    type: Literal["webhook"] = Field(description="Channel backend.")
    url: str = Field(description="Endpoint; use ${ENV_VAR} if it carries a token.")
    secret: SecretStr | None = Field(
        None, description="Signs the body: header X-Vigil-Signature: sha256=<hex HMAC-SHA256>."
    )
    include_chart: bool = Field(True, description="Add the chart as base64 PNG.")
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


class SlackChannelConfig(_Delivered):
    """Slack: a bot token (message plus chart upload) or an incoming webhook (message only)."""

    type: Literal["slack"] = Field(description="Channel backend.")
    token: SecretStr | None = Field(None, description="Bot token (xoxb-…), from ${ENV_VAR}.")
    channel: str | None = Field(None, description="Channel id for the bot (e.g. C0123456).")
    webhook_url: SecretStr | None = Field(None, description="Incoming webhook URL instead.")
    api_url: str = Field("https://slack.com/api", description="Web API base URL.")
    mentions: dict[str, str] = Field(
        default_factory=dict,
        description="Owner handle → this channel's mention syntax, e.g. '@ann': '<@U024BE7LH>'.",
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")
    signing_secret: SecretStr | None = Field(
        None,
        description="The Slack app's signing secret, from ${ENV_VAR}: with it (and a bot"
        " token) messages carry the action buttons, and presses come to the dashboard's"
        " POST /slack/actions (the app's interactivity request URL), checked by signature.",
    )
    allowed_users: list[str] = Field(
        default_factory=list,
        description="Who may press the buttons: Slack user ids or @names (default: anyone).",
    )

    @model_validator(mode="after")
    def _token_or_webhook(self) -> SlackChannelConfig:
        if (self.token is None) == (self.webhook_url is None):
            raise ValueError("give either token (with channel) or webhook_url")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel id")
        if self.signing_secret is not None and self.token is None:
            raise ValueError("buttons (signing_secret) need a bot token: a webhook cannot edit")
        return self


class EmailChannelConfig(_Delivered):
    """Email over SMTP: HTML and plain-text parts, the chart inline."""

    type: Literal["email"] = Field(description="Channel backend.")
    host: str = Field(description="SMTP server.")
    port: int = Field(587, description="SMTP port (587 STARTTLS, 465 SSL, 25 none).")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="Transport security."
    )
    username: str | None = Field(None, description="Login name, if the server needs one.")
    password: SecretStr | None = Field(None, description="Login password, from ${ENV_VAR}.")
    sender: str = Field(description="From address.")
    to: list[str] = Field(min_length=1, description="Recipient addresses.")
    ca_file: str | None = Field(
        None, description="CA bundle to trust (an internal CA); default: the system's."
    )
    timeout: Duration = Field(timedelta(seconds=30), description="SMTP timeout.")


class PagerDutyChannelConfig(_Delivered):
    """PagerDuty Events API v2: one incident per monitor and series (stable dedup_key)."""

    type: Literal["pagerduty"] = Field(description="Channel backend.")
    routing_key: SecretStr = Field(description="Integration key, from ${ENV_VAR}.")
    api_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue", description="Events API endpoint."
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


class AlertmanagerChannelConfig(_Delivered):
    """Prometheus Alertmanager (API v2): one alert per series of an incident, resolved with it."""

    type: Literal["alertmanager"] = Field(description="Channel backend.")
    url: str = Field(description="Alertmanager's base URL, e.g. http://alertmanager:9093.")
    alertname: str = Field("VigilAnomaly", description="The `alertname` label of every alert.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on every alert (team, env), for Alertmanager's routing.",
    )
    active_for: Duration = Field(
        timedelta(days=1),
        description="endsAt of a firing alert, from when it is sent: Vigil sends an alert once"
        " (and again when it grows), so Alertmanager must not expire it before Vigil resolves"
        " it; an incident resolved later than this has already expired there.",
    )
    username: str | None = Field(None, description="Basic auth user, if Alertmanager wants one.")
    password: SecretStr | None = Field(None, description="Basic auth password, from ${ENV_VAR}.")
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


class TeamsChannelConfig(_Delivered):
    """Microsoft Teams incoming webhook (a message card)."""

    type: Literal["teams"] = Field(description="Channel backend.")
    webhook_url: SecretStr = Field(description="Incoming webhook URL, from ${ENV_VAR}.")
    mentions: dict[str, str] = Field(
        default_factory=dict,
        description="Owner handle → this channel's mention syntax, e.g. '@ann': '<@U024BE7LH>'.",
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


class MattermostChannelConfig(_Delivered):
    """Mattermost: an incoming webhook (markdown text), or a bot (text and chart, and the
    message edited when its incident resolves)."""

    type: Literal["mattermost"] = Field(description="Channel backend.")
    webhook_url: SecretStr | None = Field(
        None, description="Incoming webhook URL, from ${ENV_VAR}."
    )
    url: str | None = Field(None, description="Server URL for a bot (https://chat.example.com).")
    token: SecretStr | None = Field(None, description="Bot access token, from ${ENV_VAR}.")
    channel_id: str | None = Field(None, description="The bot's channel id.")
    channel: str | None = Field(None, description="Override the webhook's channel.")
    username: str | None = Field(None, description="Override the poster's name.")
    mentions: dict[str, str] = Field(
        default_factory=dict,
        description="Owner handle → this channel's mention syntax, e.g. '@ann': '<@U024BE7LH>'.",
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")

    @model_validator(mode="after")
    def _webhook_or_bot(self) -> MattermostChannelConfig:
        bot = (self.url, self.token, self.channel_id)
        if (self.webhook_url is None) == all(v is None for v in bot):
            raise ValueError("give either webhook_url or a bot (url, token and channel_id)")
        if self.webhook_url is None and any(v is None for v in bot):
            raise ValueError("a bot needs url, token and channel_id")
        return self


ChannelConfig = Annotated[
    ConsoleChannelConfig
    | TelegramChannelConfig
    | WebhookChannelConfig
    | SlackChannelConfig
    | EmailChannelConfig
    | PagerDutyChannelConfig
    | AlertmanagerChannelConfig
    | TeamsChannelConfig
    | MattermostChannelConfig,
    Field(discriminator="type"),
]
