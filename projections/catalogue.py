"""Every read model by name: what `smd projections rebuild NAME` and the status commands know."""

from __future__ import annotations

from projections.base import Projection
from projections.indicators import IndicatorsView
from projections.patient_lists import PatientListsView
from projections.reports import ReportsView
from projections.work_queue import WorkQueueView


def catalogue() -> dict[str, Projection]:
    """Read models by name (one instance each)."""
    return {p.name: p for p in (WorkQueueView(), ReportsView(), PatientListsView(), IndicatorsView())}
