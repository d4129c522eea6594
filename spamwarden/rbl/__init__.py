"""spamwarden.rbl."""
