"""memlayer.supervisor."""
