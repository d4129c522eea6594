"""spamwarden.training."""
