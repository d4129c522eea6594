"""Real servers for integration tests and benchmarks: a private Postfix, a local DNS server,
an SMTP client (swaks), free loopback ports.

Used by tests/integration/conftest.py (as fixtures) and by bench/ (directly), so nothing here
imports pytest.
"""
