"""memlayer.api.routes."""
