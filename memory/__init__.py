"""memlayer.memory."""
