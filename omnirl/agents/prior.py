"""Prior information: who chose an action. The one place the ids are defined.

Every behaviour policy carries one of these ids; the data stores it per step as the *tag* (who
acted) and as the *prompt* (whose action is the label). ``UNKNOWN`` masks a tag, marks episode
ends, and is what a model sees when nothing is known about the actor.

| id | name | agent |
|---|---|---|
| 0 | ``ORACLE_G0`` | oracle with gamma = 0 (single-step greedy) |
| 1 | ``ORACLE_G05`` | oracle with gamma = 0.5 (myopic) |
| 2 | ``ORACLE_G093`` | oracle with gamma = 0.93 (short-term) |
| 3 | ``ORACLE_G0994`` | oracle with gamma = 0.994 (the reference policy) |
| 4 | ``MODEL_BASED`` | model-based RL learner (count-based model, optimistic values) |
| 5 | ``Q_LEARNING`` | tabular Q-learning with an exploration bonus |
| 6 | ``RANDOM`` | random (slowly drifting per-state softmax), and any injected noise action |
| 7 | ``UNKNOWN`` | unknown / masked / episode end |
"""

from __future__ import annotations

from enum import IntEnum


class PriorInfo(IntEnum):
    """Prior-information id of the policy that chose an action."""

    ORACLE_G0 = 0
    ORACLE_G05 = 1
    ORACLE_G093 = 2
    ORACLE_G0994 = 3
    MODEL_BASED = 4
    Q_LEARNING = 5
    RANDOM = 6
    UNKNOWN = 7


ORACLE_GAMMAS: dict[PriorInfo, float] = {
    PriorInfo.ORACLE_G0: 0.0,
    PriorInfo.ORACLE_G05: 0.5,
    PriorInfo.ORACLE_G093: 0.93,
    PriorInfo.ORACLE_G0994: 0.994,
}
"""Discount factor of each oracle id."""

REFERENCE = PriorInfo.ORACLE_G0994
"""The reference (label) policy of OmniRL's step-wise supervision."""

N_PRIOR = len(PriorInfo)
"""Size of the prior-information vocabulary (8)."""
