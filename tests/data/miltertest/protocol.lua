-- spamwarden milter, driven through every milter protocol stage by miltertest.
--
-- Globals come from `miltertest -D name=value` (tests/integration/test_miltertest.py):
--   socket          the milter, libmilter syntax: inet:PORT@127.0.0.1
--   authserv_id     the milter's milter.authserv_id
--   hdr_from, hdr_to, hdr_subject, hdr_date, hdr_message_id, dkim_signature, body
--                   a message DKIM-signed by good.test (the body is sent as one chunk)
--   forged_from, forged_subject, forged_date, forged_message_id, forged_body
--                   an unsigned message From bank.test
--   reject_text     the text expected after "550 5.7.1 " for it
--
-- Transaction 1 (good.test: SPF pass for 127.0.0.1, DKIM pass, DMARC pass) carries a forged
-- Authentication-Results claiming authserv_id and a forged X-Spam-Status: both must go, and
-- the milter's own Authentication-Results and X-Spam-Status must be added.
-- Transaction 2, on the same connection (bank.test: SPF -all without us, p=reject, unsigned),
-- must be refused with 550 5.7.1.
--
-- miltertest prints nothing for an uncaught error(), so everything runs under pcall and a
-- failure prints "miltertest: FAILED: <why>" and exits 1. Success prints "miltertest: ok".

local function check(cond, what)
  if not cond then error(what, 0) end
end

local function step(err, what)
  if err ~= nil then error(what .. ": " .. tostring(err), 0) end
end

local function expect_reply(conn, wanted, what)
  local got = mt.getreply(conn)
  for _, w in ipairs(wanted) do
    if got == w then return got end
  end
  error(what .. ": unexpected milter reply " .. tostring(got), 0)
end

local function contains(haystack, needle)
  return haystack ~= nil and string.find(haystack, needle, 1, true) ~= nil
end

local CONTINUE = { SMFIR_CONTINUE }
local BODY_OK = { SMFIR_CONTINUE, SMFIR_SKIP }

local function transaction(conn, spec)
  step(mt.macro(conn, SMFIC_MAIL, "i", spec.queue_id), "macro i")
  step(mt.mailfrom(conn, spec.mail_from), "mailfrom")
  expect_reply(conn, CONTINUE, "MAIL FROM " .. spec.mail_from)
  step(mt.rcptto(conn, "<user@test.local>"), "rcptto")
  expect_reply(conn, CONTINUE, "RCPT TO")
  -- DATA and end-of-headers are stages a milter may leave out (SMFIP_NODATA, SMFIP_NOEOH);
  -- miltertest fails the script if any other stage below was negotiated away.
  if not mt.test_option(conn, SMFIP_NODATA) then
    step(mt.data(conn), "data")
    expect_reply(conn, CONTINUE, "DATA")
  end
  for _, h in ipairs(spec.headers) do
    step(mt.header(conn, h[1], h[2]), "header " .. h[1])
    expect_reply(conn, CONTINUE, "header " .. h[1])
  end
  if not mt.test_option(conn, SMFIP_NOEOH) then
    step(mt.eoh(conn), "eoh")
    expect_reply(conn, CONTINUE, "end of headers")
  end
  step(mt.bodystring(conn, spec.body), "body")
  expect_reply(conn, BODY_OK, "body")
  step(mt.eom(conn), "eom")
end

local function run()
  mt.set_timeout(30)
  local conn = mt.connect(socket, 40, 0.25)
  check(conn ~= nil, "mt.connect(" .. tostring(socket) .. ") failed")

  step(mt.macro(conn, SMFIC_CONNECT, "j", "mx.test.local", "_", "client.test [127.0.0.1]"),
       "macro j")
  step(mt.conninfo(conn, "client.test", "127.0.0.1"), "conninfo")
  expect_reply(conn, CONTINUE, "connect")
  step(mt.helo(conn, "client.test"), "helo")
  expect_reply(conn, CONTINUE, "helo")

  -- 1: authenticated mail with forged results headers
  transaction(conn, {
    queue_id = "4XGOOD1", mail_from = "<alice@good.test>", body = body,
    headers = {
      { "Authentication-Results",
        authserv_id .. "; spf=pass smtp.mailfrom=bank.test; dkim=pass header.d=bank.test" },
      { "X-Spam-Status", "No, score=-100.0 required=5.0 tests=FORGED" },
      { "DKIM-Signature", dkim_signature },
      { "From", hdr_from }, { "To", hdr_to }, { "Subject", hdr_subject },
      { "Date", hdr_date }, { "Message-ID", hdr_message_id },
    },
  })
  expect_reply(conn, { SMFIR_ACCEPT, SMFIR_CONTINUE }, "eom of the authenticated message")
  check(mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results")
        or mt.eom_check(conn, MT_HDRADD, "Authentication-Results"),
        "no Authentication-Results added")
  check(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results")
        or mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results"),
        "the forged Authentication-Results was not removed")
  check(mt.eom_check(conn, MT_HDRDELETE, "X-Spam-Status")
        or mt.eom_check(conn, MT_HDRCHANGE, "X-Spam-Status"),
        "the forged X-Spam-Status was not removed")
  local ar = mt.getheader(conn, "Authentication-Results", 0)
  check(ar ~= nil, "cannot read the added Authentication-Results")
  mt.echo("Authentication-Results: " .. ar)
  check(contains(ar, authserv_id .. ";"), "authserv-id missing: " .. ar)
  check(contains(ar, "spf=pass"), "spf not pass: " .. ar)
  check(contains(ar, "dkim=pass"), "dkim not pass: " .. ar)
  check(contains(ar, "header.d=good.test"), "dkim domain missing: " .. ar)
  check(contains(ar, "dmarc=pass"), "dmarc not pass: " .. ar)
  check(not contains(ar, "bank.test"), "forged results leaked: " .. ar)
  local status = mt.getheader(conn, "X-Spam-Status", 0)
  check(status ~= nil, "no X-Spam-Status added")
  mt.echo("X-Spam-Status: " .. status)
  check(string.find(status, "^%s*No, score=") ~= nil, "X-Spam-Status not No: " .. status)
  check(not contains(status, "FORGED"), "forged X-Spam-Status kept: " .. status)

  -- 2: forged sender of a p=reject domain, same connection
  transaction(conn, {
    queue_id = "4XBANK2", mail_from = "<security@bank.test>", body = forged_body,
    headers = {
      { "From", forged_from }, { "To", hdr_to }, { "Subject", forged_subject },
      { "Date", forged_date }, { "Message-ID", forged_message_id },
    },
  })
  expect_reply(conn, { SMFIR_REPLYCODE }, "eom of the forged message")
  -- miltertest compares the whole reply line, so the test passes the text it expects.
  check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1", reject_text),
        "reply is not: 550 5.7.1 " .. reject_text)

  step(mt.disconnect(conn), "disconnect")
  mt.echo("miltertest: ok")
end

local ok, err = pcall(run)
if not ok then
  mt.echo("miltertest: FAILED: " .. tostring(err))
  os.exit(1)
end
