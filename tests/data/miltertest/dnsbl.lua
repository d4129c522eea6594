-- One message through a real spamwarden milter from a given client IP; echoes the
-- X-Spam-Reasons header the milter added (tests/integration/test_external_dnsbl.py).
--
-- Globals from `miltertest -D name=value`:
--   socket      the milter, libmilter syntax: inet:PORT@127.0.0.1
--   client_ip   the SMTP client address given at connect
--   mail_from   the envelope sender; hdr_from, link: the From header and a linked URL
--
-- Prints "X-Spam-Reasons: <value>" and "miltertest: ok", or "miltertest: FAILED: <why>".

local function check(cond, what)
  if not cond then error(what, 0) end
end

local function step(err, what)
  if err ~= nil then error(what .. ": " .. tostring(err), 0) end
end

local function reply(conn, wanted, what)
  local got = mt.getreply(conn)
  for _, w in ipairs(wanted) do
    if got == w then return end
  end
  error(what .. ": unexpected milter reply " .. tostring(got), 0)
end

local CONTINUE = { SMFIR_CONTINUE }

local function run()
  mt.set_timeout(30)
  local conn = mt.connect(socket, 40, 0.25)
  check(conn ~= nil, "mt.connect(" .. tostring(socket) .. ") failed")
  step(mt.macro(conn, SMFIC_CONNECT, "j", "mx.test.local", "_", "client.test [" .. client_ip .. "]"),
       "macro j")
  step(mt.conninfo(conn, "client.test", client_ip), "conninfo")
  reply(conn, CONTINUE, "connect")
  step(mt.helo(conn, "client.test"), "helo")
  reply(conn, CONTINUE, "helo")
  step(mt.macro(conn, SMFIC_MAIL, "i", "4XDNSBL1"), "macro i")
  step(mt.mailfrom(conn, "<" .. mail_from .. ">"), "mailfrom")
  reply(conn, CONTINUE, "MAIL FROM")
  step(mt.rcptto(conn, "<user@test.local>"), "rcptto")
  reply(conn, CONTINUE, "RCPT TO")
  if not mt.test_option(conn, SMFIP_NODATA) then
    step(mt.data(conn), "data")
    reply(conn, CONTINUE, "DATA")
  end
  local headers = {
    { "From", hdr_from }, { "To", "user@test.local" }, { "Subject", "offers" },
    { "Date", "Sat, 05 Dec 2026 02:00:00 +0000" }, { "Message-ID", "<dnsbl-1@test>" },
  }
  for _, h in ipairs(headers) do
    step(mt.header(conn, h[1], h[2]), "header " .. h[1])
    reply(conn, CONTINUE, "header " .. h[1])
  end
  if not mt.test_option(conn, SMFIP_NOEOH) then
    step(mt.eoh(conn), "eoh")
    reply(conn, CONTINUE, "end of headers")
  end
  step(mt.bodystring(conn, "See " .. link .. "\r\n"), "body")
  reply(conn, { SMFIR_CONTINUE, SMFIR_SKIP }, "body")
  step(mt.eom(conn), "eom")
  reply(conn, { SMFIR_ACCEPT, SMFIR_CONTINUE }, "eom")
  local reasons = mt.getheader(conn, "X-Spam-Reasons", 0)
  mt.echo("X-Spam-Reasons: " .. tostring(reasons))
  step(mt.disconnect(conn), "disconnect")
  mt.echo("miltertest: ok")
end

local ok, err = pcall(run)
if not ok then
  mt.echo("miltertest: FAILED: " .. tostring(err))
  os.exit(1)
end
