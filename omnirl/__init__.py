"""omnirl: large-scale in-context reinforcement learning on procedurally generated MDPs.

Data flow (each package imports only from the ones before it):

    tasks -> agents -> data -> model -> train -> evaluate -> analysis

``omnirl.tasks`` is the world: AnyMDP / Garnet / bandit task samplers, the exact solver,
the Gymnasium environment, the batched simulator and task sets.
"""

__version__ = "0.1.0"
