"""memlayer.api."""
