"""Profile metrics: per-column statistics and dataset-level health, expanded into metrics."""

from __future__ import annotations

from vigil.config.project import Metric
from vigil.config.schema import DatasetConfig
from vigil.timeutil import Granularity

# How each stat behaves downstream: missing buckets filled with 0 (counts) or left missing,
# and how finer buckets roll up into coarser ones (None: recompute at the source).
STAT_FILL = {
    "count": "zero",
    "null_count": "zero",
    "count_integral": "zero",
    "count_fractional": "zero",
    "count_bool": "zero",
    "count_string": "zero",
}
STAT_ROLLUP = {
    "count": "sum",
    "null_count": "sum",
    "count_integral": "sum",
    "count_fractional": "sum",
    "count_bool": "sum",
    "count_string": "sum",
    "min": "min",
    "max": "max",
    "missing_datapoint": "min",
    "seconds_since_last_upload": "last",
}
# Stats whose value is a distribution or a string, kept as a payload beside the value.
PAYLOAD_STATS = frozenset({"histogram", "frequent_items", "inferred_type"})


def profile_metrics(
    dataset: DatasetConfig,
    granularity: Granularity,
    owners: list[str],
    links: dict[str, str],
) -> list[tuple[int, Metric]]:
    """One metric per profiled column and stat (`price.mean`), then the dataset stats.

    Each item carries the index of its `profile` entry, or -1 for a dataset stat.
    """
    out: list[tuple[int, Metric]] = []
    for index, column in enumerate(dataset.profile):
        for stat in column.effective_stats:
            name = f"{column.column}.{stat}"
            out.append(
                (
                    index,
                    Metric(
                        name=name,
                        title=f"{column.column} {stat.replace('_', ' ')}",
                        dataset=dataset.name,
                        formula=None,
                        owners=tuple(column.owners if column.owners is not None else owners),
                        links=links,
                        fill=STAT_FILL.get(stat, "missing"),
                        granularity=granularity,
                        analyzers=(),
                        rollup=STAT_ROLLUP.get(stat),
                        column=column.column,
                        stat=stat,
                        kind=column.kind,
                    ),
                )
            )
    for stat in dataset.dataset_stats:
        name = f"{dataset.name}.{stat}"
        out.append(
            (
                -1,
                Metric(
                    name=name,
                    title=f"{dataset.name} {stat.replace('_', ' ')}",
                    dataset=dataset.name,
                    formula=None,
                    owners=tuple(owners),
                    links=links,
                    fill="missing",
                    granularity=granularity,
                    analyzers=(),
                    rollup=STAT_ROLLUP.get(stat),
                    stat=stat,
                    kind="dataset",
                ),
            )
        )
    return out
