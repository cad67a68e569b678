"""memlayer.migrations."""
