"""memlayer.migrations.versions."""
