"""Files shipped with spamwarden: the default content model."""
