"""The pipeline as a graph: sources → datasets → metrics → analyzers → monitors → channels."""

from __future__ import annotations

from vigil.config.project import Project

Edge = tuple[str, str]


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


def render_text(project: Project) -> str:
    """An indented tree per source, then monitors and their channels."""
    lines: list[str] = []
    for source in project.settings.sources:
        lines.append(f"source {source}")
        for dataset in (d for d in project.datasets if d.config.source == source):
            lines.append(f"  dataset {dataset.name} ({dataset.granularity.name})")
            for metric in dataset.metrics:
                analyzers = ", ".join(a.id for a in metric.analyzers) or "no analyzers"
                lines.append(f"    metric {metric.name} → {analyzers}")
    for monitor in project.monitors.values():
        lines.append(
            f"monitor {monitor.id}: {', '.join(monitor.analyzers)} → {', '.join(monitor.channels)}"
        )
    return "\n".join(lines) + "\n"


def render_dot(project: Project) -> str:
    """Graphviz dot."""
    lines = ["digraph vigil {", "  rankdir=LR;"]
    kinds = {n.split(":", 1)[0] for e in pipeline_edges(project) for n in e}
    shapes = {"source": "cylinder", "channel": "box", "monitor": "hexagon"}
    for kind in sorted(kinds):
        lines.append(f"  node [shape={shapes.get(kind, 'ellipse')}]; // {kind}")
    for a, b in pipeline_edges(project):
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_mermaid(project: Project) -> str:
    """Mermaid flowchart."""
    ids: dict[str, str] = {}

    def node(name: str) -> str:
        if name not in ids:
            ids[name] = f"n{len(ids)}"
            return f'{ids[name]}["{name}"]'
        return ids[name]

    lines = ["flowchart LR"]
    lines.extend(f"  {node(a)} --> {node(b)}" for a, b in pipeline_edges(project))
    return "\n".join(lines) + "\n"
