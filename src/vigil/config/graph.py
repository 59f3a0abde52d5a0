"""The pipeline as a graph: sources → datasets → metrics → analyzers → monitors → channels.

With the last run's records (`vigil graph --run`), each dataset node tells how many rows came
in and went out of its ingest, how many series it analysed and how many alerts it raised, with
its status; each source the status of its datasets' reads; the channels what was delivered —
like an ETL graph's `in=3 out=3 [done]` per node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vigil.config.project import Project
from vigil.model import RunRecord

Edge = tuple[str, str]
Counts = Mapping[str, str]  # node name → its counts from the last run


def run_counts(project: Project, records: Sequence[RunRecord]) -> dict[str, str]:
    """Each node's counts in the newest run of `records` (the run log, oldest first)."""
    if not records:
        return {}
    run_id = records[-1].run_id
    last = [r for r in records if r.run_id == run_id]
    out: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for dataset in project.datasets:
        stages = {r.stage: r for r in last if r.dataset == dataset.name}
        ingest = stages.get("ingest")
        if ingest is None:
            continue
        parts = [f"in={ingest.rows_in:,} out={ingest.rows_out:,}"]
        if "analyze" in stages:
            parts.append(f"series={stages['analyze'].rows_out:,}")
        if "route" in stages:
            parts.append(f"alerts={stages['route'].rows_out:,}")
        failed = any(r.status != "ok" for r in stages.values())
        status = "failed" if failed else "done"
        out[f"dataset:{dataset.name}"] = " ".join(parts) + f" [{status}]"
        sources.setdefault(dataset.config.source, []).append(status)
    for source, states in sources.items():
        out[f"source:{source}"] = "[failed]" if "failed" in states else "[done]"
    deliver = next((r for r in last if r.stage == "deliver"), None)
    if deliver is not None:
        state = "failed" if deliver.status != "ok" else "done"
        for channel in project.settings.channels:
            out[f"channel:{channel}"] = f"sent={deliver.rows_out:,} [{state}]"
    out["run"] = f"{last[0].kind} {run_id} at {last[0].started_at:%Y-%m-%d %H:%M} UTC"
    return out


def pipeline_edges(project: Project) -> list[Edge]:
    """Edges between typed node names such as `source:app` and `metric:likes`."""
    edges: list[Edge] = []
    for dataset in project.datasets:
        edges.append((f"source:{dataset.config.source}", f"dataset:{dataset.name}"))
        for metric in dataset.metrics:
            edges.append((f"dataset:{dataset.name}", f"metric:{metric.name}"))
            edges.extend((f"metric:{metric.name}", f"analyzer:{a.id}") for a in metric.analyzers)
    for analyzer_id in project.analyzers:
        for monitor in project.monitors_for(analyzer_id):
            edges.append((f"analyzer:{analyzer_id}", f"monitor:{monitor.id}"))
    for monitor in project.monitors.values():
        edges.extend((f"monitor:{monitor.id}", f"channel:{c}") for c in monitor.channels)
    return list(dict.fromkeys(edges))


def _with(counts: Counts, name: str) -> str:
    return f"  {counts[name]}" if name in counts else ""


def render_text(project: Project, counts: Counts | None = None) -> str:
    """An indented tree per source, then monitors and their channels."""
    counts = counts or {}
    lines: list[str] = [f"last run: {counts['run']}"] if "run" in counts else []
    for source in project.settings.sources:
        lines.append(f"source {source}{_with(counts, f'source:{source}')}")
        for dataset in (d for d in project.datasets if d.config.source == source):
            lines.append(
                f"  dataset {dataset.name} ({dataset.granularity.name})"
                + _with(counts, f"dataset:{dataset.name}")
            )
            for metric in dataset.metrics:
                analyzers = ", ".join(a.id for a in metric.analyzers) or "no analyzers"
                lines.append(f"    metric {metric.name} → {analyzers}")
    for monitor in project.monitors.values():
        lines.append(
            f"monitor {monitor.id}: {', '.join(monitor.analyzers)} → {', '.join(monitor.channels)}"
        )
    for channel in project.settings.channels:
        if f"channel:{channel}" in counts:
            lines.append(f"channel {channel}{_with(counts, f'channel:{channel}')}")
    return "\n".join(lines) + "\n"


def _label(name: str, counts: Counts) -> str:
    return f"{name}\\n{counts[name]}" if name in counts else name


def render_dot(project: Project, counts: Counts | None = None) -> str:
    """Graphviz dot."""
    counts = counts or {}
    lines = ["digraph vigil {", "  rankdir=LR;"]
    if "run" in counts:
        lines.append(f'  label="last run: {counts["run"]}"; labelloc=t;')
    edges = pipeline_edges(project)
    shapes = {"source": "cylinder", "channel": "box", "monitor": "hexagon"}
    for name in dict.fromkeys(n for e in edges for n in e):
        shape = shapes.get(name.split(":", 1)[0], "ellipse")
        failed = ', color="#b91c1c"' if "[failed]" in counts.get(name, "") else ""
        lines.append(f'  "{name}" [shape={shape}, label="{_label(name, counts)}"{failed}];')
    for a, b in edges:
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_mermaid(project: Project, counts: Counts | None = None) -> str:
    """Mermaid flowchart."""
    counts = counts or {}
    ids: dict[str, str] = {}

    def node(name: str) -> str:
        if name not in ids:
            ids[name] = f"n{len(ids)}"
            text = f"{name}<br/>{counts[name]}" if name in counts else name
            return f'{ids[name]}["{text}"]'
        return ids[name]

    lines = ["flowchart LR"]
    lines.extend(f"  {node(a)} --> {node(b)}" for a, b in pipeline_edges(project))
    return "\n".join(lines) + "\n"
