"""spamwarden: anti-spam milter and reputation service.

SPF, DKIM and DMARC verification, explainable scoring with a trained classifier,
advertising-consent rules (Decree 91/2020/ND-CP defaults), and a DNS blocklist fed
by recipients' complaints.
"""

__version__ = "0.1.0"
