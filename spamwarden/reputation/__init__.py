"""spamwarden.reputation."""
