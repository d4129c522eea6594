# IMAPSieve (Pigeonhole): a message was copied or moved into Junk: the user says spam.
# Installed as imapsieve_mailbox1_before (90-imapsieve.conf); runs as the mail user.
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];

if environment :matches "imap.user" "*" {
  set "username" "${1}";
}

pipe :copy "spamwarden-learn" [ "spam", "${username}" ];
