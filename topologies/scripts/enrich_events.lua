-- Normalises and enriches the events of topologies/http_events.yaml.
--
-- In:  {"event": " Page View ", "user": " Ann@Example.COM ",
--       "ts": 1714557600, "amount": "12.50", ...}
-- Out: {"event": "page_view", "user": "ann@example.com",
--       "ts": 1714557600, "amount": 12.5, ..., "domain": "example.com",
--       "day": "2024-05-01"}
--
-- * event names become snake_case; an event without a name, and
--   heartbeats, are dropped (return nil);
-- * users are trimmed and lower-cased, and their e-mail domain added;
-- * ts (seconds since the epoch) gives the UTC day;
-- * an amount sent as text becomes a number; text that is no number is
--   an error, which dead-letters the event;
-- * an "order" with a list of items becomes one "order_item" record per
--   item, each carrying the order's id, user and day.

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function snake(s)
  return (trim(s):lower():gsub("[%s%-]+", "_"))
end

function process(r)
  if type(r.event) ~= "string" or trim(r.event) == "" then
    return nil
  end
  local name = snake(r.event)
  if name == "heartbeat" then
    return nil
  end
  r.event = name

  if type(r.user) == "string" then
    r.user = trim(r.user):lower()
    r.domain = r.user:match("@([%w%.%-]+)$") or sluice.null
  end
  if math.type(r.ts) == "integer" then
    r.day = os.date("!%Y-%m-%d", r.ts)
  end
  if type(r.amount) == "string" then
    local n = tonumber(trim(r.amount))
    if n == nil then
      error("amount '" .. r.amount .. "' is not a number")
    end
    r.amount = n
  end

  if name == "order" and type(r.items) == "table" then
    local out = {}
    for i, item in ipairs(r.items) do
      out[i] = {event = "order_item", order = r.order, user = r.user,
                day = r.day, n = i, sku = item.sku, qty = item.qty or 1}
    end
    return out
  end
  return r
end
