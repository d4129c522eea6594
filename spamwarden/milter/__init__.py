"""spamwarden.milter."""
