-- wrk script: form logins, each with a fresh username (so every login also creates a user).
-- env: BENCH_LOGIN_PATH, BENCH_XSRF (the login form's token), BENCH_COOKIE (the matching cookie header)
local counter = 0
local prefix = "u"

init = function(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  prefix = "b" .. math.random(1, 1000000000) .. "x"
end

request = function()
  counter = counter + 1
  local body = "username=" .. prefix .. counter .. "&password="
  local headers = {}
  -- the XSRF token travels as a header: no form-encoding concerns for base64 tokens
  headers["X-XSRFToken"] = os.getenv("BENCH_XSRF")
  -- JupyterHub binds an anonymous visitor's XSRF token to the User-Agent: send the one the form was fetched with
  headers["User-Agent"] = "hubkit-bench"
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  headers["Cookie"] = os.getenv("BENCH_COOKIE")
  return wrk.format("POST", os.getenv("BENCH_LOGIN_PATH"), headers, body)
end
