"""Build hook for the optional C answer path of the DNS server (spamwarden/rbl/_native.c).

Metadata lives in setup.cfg. The extension is optional: where it does not build (no
compiler, no Python headers) the install goes on and the server uses its pure-Python path.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("spamwarden.rbl._native", ["spamwarden/rbl/_native.c"],
                             optional=True, extra_compile_args=["-O2"])])
