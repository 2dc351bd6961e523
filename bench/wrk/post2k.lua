wrk.method = "POST"
wrk.body = string.rep("x", 2000)
wrk.headers["Content-Type"] = "application/json"
