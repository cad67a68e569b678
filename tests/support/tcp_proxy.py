"""The TCP proxy tests own, put between memlayer and a Postgres or Redis server.

One implementation, in the package (the chaos run uses it too): see
``memlayer.chaos.proxy`` for its modes (forward, refuse, stall, cut after a match).
"""

from memlayer.chaos.proxy import ChaosProxy

__all__ = ["ChaosProxy"]
