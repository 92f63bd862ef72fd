-- Enriches one parsed access log record (regex_parse, preset combined):
--   status_class  "2xx" .. "5xx", from status
--   method, path, query, protocol  from the request line; null for a
--                 request that is not "METHOD TARGET HTTP/x" (a TLS
--                 handshake sent to the HTTP port, say); query is null
--                 when the target has no "?"
--   is_bot        true when the user agent names a crawler or a script
--   bytes         0 for "-": the common log format writes "-" for a
--                 response without a body
local null = sluice.null

local classes = {}
for i = 0, 9 do
  classes[i] = i .. "xx"
end

local bot_words = {
  "bot", "crawler", "spider", "slurp", "curl/", "wget/",
  "python-requests", "go-http-client", "httpclient",
}

local function names_a_bot(agent)
  agent = string.lower(agent)
  for _, word in ipairs(bot_words) do
    if string.find(agent, word, 1, true) then
      return true
    end
  end
  return false
end

-- A site sees few distinct user agents: remember the answer for each.
-- Bounded, so that a stream of unique agents cannot grow it forever.
local bots, n_bots = {}, 0

local function is_bot(agent)
  if agent == null or agent == "-" then
    return false
  end
  local known = bots[agent]
  if known == nil then
    if n_bots >= 10000 then
      bots, n_bots = {}, 0
    end
    known = names_a_bot(agent)
    bots[agent] = known
    n_bots = n_bots + 1
  end
  return known
end

function process(r)
  r.status_class = classes[r.status // 100] or null
  local method, path, mark, query, protocol = string.match(
    r.request, "^(%u+) ([^ ?]*)(%??)([^ ]*) (HTTP/%d[.%d]*)$")
  if method then
    r.method, r.path, r.protocol = method, path, protocol
    r.query = mark == "?" and query or null
  else
    r.method, r.path, r.query, r.protocol = null, null, null, null
  end
  r.is_bot = is_bot(r.user_agent)
  if r.bytes == null then
    r.bytes = 0
  end
  return r
end
