"""The project's files: vigil.yaml and the included definition files."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr

from vigil.config.schema.analyzers import AnalyzerConfig
from vigil.config.schema.channels import ChannelConfig, ConsoleChannelConfig
from vigil.config.schema.datasets import DatasetConfig
from vigil.config.schema.defaults import Defaults
from vigil.config.schema.monitors import MonitorConfig
from vigil.config.schema.reports import ReportConfig
from vigil.config.schema.sources import SourceConfig
from vigil.config.schema.stores import DuckDBStoreConfig, StoreConfig
from vigil.config.schema.types import Base, Duration, ZoneName
from vigil.config.schema.web import WebConfig


class DefinitionsFile(Base):
    """An included file: datasets, analyzers and monitors (any of them)."""

    datasets: list[DatasetConfig] = Field(default_factory=list, description="Datasets.")
    analyzers: list[AnalyzerConfig] = Field(default_factory=list, description="Analyzers.")
    monitors: list[MonitorConfig] = Field(default_factory=list, description="Monitors.")
    reports: list[ReportConfig] = Field(
        default_factory=list, description="Scheduled summaries (docs/monitors.md#reports)."
    )


class SchedulerConfig(Base):
    """How `vigil run` behaves."""

    lock_ttl: Duration = Field(
        timedelta(minutes=10),
        description="A leader that has not renewed its lock for this long is replaced.",
    )
    hot_reload: bool = Field(True, description="Reload the configuration when its files change.")


class LLMConfig(Base):
    """A second opinion on alerts from a chat-completions endpoint (OpenAI-compatible)."""

    base_url: str = Field(
        "https://api.openai.com/v1", description="The API's base URL (…/chat/completions)."
    )
    model: str = Field("gpt-4o-mini", description="The model to ask.")
    api_key: SecretStr | None = Field(None, description="Bearer key, from ${ENV_VAR}.")
    mode: Literal["annotate", "confirm"] = Field(
        "annotate",
        description="annotate: add the model's view to the message; confirm: also send only"
        " when it agrees (a refusal is logged as llm_rejected). A monitor's `llm` overrides.",
    )
    timeout: Duration = Field(
        timedelta(seconds=10),
        description="An answer later than this is not waited for: the alert goes out as it is.",
    )
    points: int = Field(96, ge=8, le=2000, description="Recent values of the series sent.")


def _console_only() -> dict[str, ChannelConfig]:
    return {"console": ConsoleChannelConfig(type="console")}


class ProjectFile(DefinitionsFile):
    """vigil.yaml: the project's settings, plus optionally its own definitions."""

    name: str = Field("vigil", description="Project name, shown in alerts.")
    timezone: ZoneName = Field("UTC", description="IANA zone for days, quiet hours and charts.")
    store: StoreConfig = Field(
        default_factory=lambda: DuckDBStoreConfig(), description="Metric store."
    )
    sources: dict[str, SourceConfig] = Field(default_factory=dict, description="Data sources.")
    channels: dict[str, ChannelConfig] = Field(
        default_factory=lambda: _console_only(),
        description="Notification channels by name.",
    )
    defaults: Defaults = Field(default_factory=lambda: Defaults(), description="Inherited.")
    llm: LLMConfig | None = Field(
        None, description="A second opinion on each alert from a language model (off by default)."
    )
    include: list[str] = Field(
        default_factory=lambda: ["metrics/**/*.yaml", "monitors/**/*.yaml"],
        description="Glob patterns (relative to the project) of definition files; `**` is any"
        " depth (a batch folder per dataset, as Anomstack lays them out).",
    )
    charts_dir: str | None = Field(
        "charts", description="Where alert charts are also saved as PNG; null to not save."
    )
    public_url: str | None = Field(
        None, description="Base URL of the Vigil dashboard, used in the default chart link."
    )
    scheduler: SchedulerConfig = Field(
        default_factory=lambda: SchedulerConfig(), description="`vigil run` settings."
    )
    web: WebConfig = Field(
        default_factory=lambda: WebConfig(),
        description="Dashboard and API. Without tokens or users it serves only on a loopback"
        " address, to anyone there, as admin.",
    )
