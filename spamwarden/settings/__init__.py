"""Per-recipient settings and sender allow/deny lists.

* :mod:`.model` - pure: validating and normalising entries, the thresholds in
  effect for one recipient, which allow and deny entries a message matches;
* :mod:`.store` - the Redis keys (``sw:{sw}:settings:*``), the store used by the
  CLI and the API, and the milter's cached snapshot;
* :mod:`.cli` - ``spamwarden settings``, ``allow`` and ``deny``.

The milter reads a :class:`~.model.SettingsSnapshot` (through
``milter.interfaces.SettingsSource``); it imports :mod:`.model` only.
"""
