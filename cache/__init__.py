"""memlayer.cache."""
