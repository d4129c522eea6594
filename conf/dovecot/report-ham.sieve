# IMAPSieve (Pigeonhole): a message was copied or moved out of Junk: the user says not spam,
# unless it went to the Trash (deleting spam says nothing about it).
# Installed as imapsieve_mailbox2_before (90-imapsieve.conf); runs as the mail user.
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];

if environment :matches "imap.mailbox" "*" {
  set "mailbox" "${1}";
}

if string :is "${mailbox}" ["Trash", "Junk"] {
  stop;
}

if environment :matches "imap.user" "*" {
  set "username" "${1}";
}

pipe :copy "spamwarden-learn" [ "ham", "${username}" ];
