"""The derived lost-to-follow-up status (失访) that R5 records and may later withdraw.

An agency's *declaration* of unknown whereabouts is a patient fact; this is the other source:
the policy derived it from consecutive missed visits. It is its own small aggregate, so the
policy never writes into a patient's stream (agencies keep writing there without contention).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate


class LostEpisode(Aggregate):
    """One episode of derived loss: derived, then withdrawn (facts changed) or ended (reached)."""

    TOPIC = "smd.LostEpisode"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.LostEpisode.Created"

    class Derived(Aggregate.Created):
        """LostToFollowUp: consecutive missed visits made the patient lost."""

        TOPIC = "smd.LostToFollowUp"
        patient_id: UUID
        episode_key: str

    class Withdrawn(Aggregate.Event):
        """LostToFollowUpWithdrawn: a late report shows the misses were not consecutive."""

        TOPIC = "smd.LostToFollowUpWithdrawn"
        because_of: str

        def apply(self, aggregate: LostEpisode) -> None:
            aggregate.status = "withdrawn"

    class Ended(Aggregate.Event):
        """LostToFollowUpEnded: a visit reached the patient again."""

        TOPIC = "smd.LostToFollowUpEnded"
        because_of: str

        def apply(self, aggregate: LostEpisode) -> None:
            aggregate.status = "ended"

    def __init__(self, patient_id: UUID, episode_key: str) -> None:
        self.patient_id = patient_id
        self.episode_key = episode_key
        self.status = "lost"

    @classmethod
    def derive(cls, id: UUID, patient_id: UUID, episode_key: str, now: datetime) -> LostEpisode:
        """The patient became lost (R5)."""
        return cls._create(cls.Derived, id=id, timestamp=now, patient_id=patient_id, episode_key=episode_key)

    def withdraw(self, because_of: str, now: datetime) -> None:
        """The derivation no longer holds."""
        if self.status == "lost":
            self.trigger_event(self.Withdrawn, timestamp=now, because_of=because_of)

    def end(self, because_of: str, now: datetime) -> None:
        """The patient was reached again."""
        if self.status == "lost":
            self.trigger_event(self.Ended, timestamp=now, because_of=because_of)
