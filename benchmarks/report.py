"""One measured figure (a row of the table), its pass/fail rule, and the two output formats."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """A figure's goal: `min`/`max` bound the value, `min_ratio`/`max_ratio` value/baseline."""

    kind: str
    limit: float
    text: str

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = ratio if self.kind.endswith("ratio") else value
        if subject is None or math.isnan(subject):
            return None
        return subject >= self.limit if self.kind.startswith("min") else subject <= self.limit


@dataclass
class Row:
    figure: str  # the --only name it belongs to
    label: str  # what was measured, as printed
    backend: str
    value: float | None = None
    unit: str = ""
    baseline: float | None = None
    baseline_label: str = ""  # what the baseline is, in a few words
    target: Target | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.error is not None or self.value is None:
            return False if self.error else None
        return self.target.met(self.value, self.ratio) if self.target else None

    @property
    def result(self) -> str:
        if self.error is not None:
            return "ERROR"
        return {True: "pass", False: "FAIL", None: "info"}[self.passed]

    def to_dict(self) -> dict[str, Any]:
        target = self.target
        return {
            "figure": self.figure,
            "label": self.label,
            "backend": self.backend,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "target": None
            if target is None
            else {"kind": target.kind, "limit": target.limit, "text": target.text},
            "result": self.result,
            "error": self.error,
            "details": self.details,
        }


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("jobs/s", "runs/s", "rows/s"):
        return f"{value:,.0f} {unit}"
    if unit in ("ms", "MB"):
        return f"{value:.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:g} {unit}".strip()


def table(rows: list[Row]) -> str:
    headers = ("figure", "backend", "value", "baseline (same run)", "ratio", "target", "result")
    lines = []
    for row in rows:
        if row.error is not None:
            value = "error: " + row.error.splitlines()[0][:60] if row.error else "error"
        else:
            value = fmt(row.value, row.unit)
        baseline = fmt(row.baseline, row.unit) if row.baseline is not None else "—"
        if row.baseline is not None and row.baseline_label:
            baseline += f" ({row.baseline_label})"
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else "—"
        target = row.target.text if row.target else "—"
        lines.append((row.label, row.backend, value, baseline, ratio, target, row.result))
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *lines, strict=True)
    ]
    out = []
    for index, cells in enumerate([headers, *lines]):
        out.append(
            "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True))
        )
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in out)


def to_json(rows: list[Row], meta: dict[str, Any]) -> str:
    document = {**meta, "figures": [row.to_dict() for row in rows]}
    return json.dumps(document, indent=2, ensure_ascii=False, default=str)
