"""memlayer: the long-term memory layer of an LLM chat backend.

Postgres is the source of truth; Redis is a versioned write-through cache of each
user's memory context. See README.md and docs/architecture.md for the architecture.
"""

__version__ = "0.1.0"
