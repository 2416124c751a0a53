#!/usr/bin/env bash
# test_server_limits.sh: the limits of `cllm serve` (issue 7 point 5), each with its status code
# and a JSON error: request body size (413), prompt tokens and max_tokens against max-model-len
# (400), the connection limit (503 over it, refused past the overflow band, the others served),
# connections per address, and the request timeout: an idle client and clients trickling their
# headers or body are dropped within it and leave no engine request and no KV block behind,
# while a generation longer than the timeout is not cut.
# Args: path of the cllm binary, the shared data directory. Needs curl, jq and python3.
. "$(dirname "$0")/lib.sh" test-server-limits "$@"
need curl jq python3 bc

MODEL=$WORK/tiny.gguf
"$CLLM" mkmodel --shape tiny --vocab-from "$VOCAB" \
  --chat-template llama3 -o "$MODEL" 2>"$WORK/mkmodel.err" || { cat "$WORK/mkmodel.err"; echo "FAIL: mkmodel"; exit 1; }

# expect_error STATUS FRAGMENT WHAT CURL_ARGS...: an OpenAI error body of that status whose
# message contains FRAGMENT
expect_error() {
  local want=$1 frag=$2 what=$3; shift 3
  local code
  code=$(curl -s -m 30 -o "$WORK/err.json" -w '%{http_code}' "$@")
  if [ "$code" = "$want" ] && jq -e --argjson c "$want" --arg f "$frag" \
      '.error | (.message|type=="string" and contains($f)) and (.type|type=="string") and has("param") and .code == $c' \
      "$WORK/err.json" >/dev/null 2>&1; then
    ok "$what -> $want: $(jq -r .error.message "$WORK/err.json")"
  else
    bad "$what: got $code, want $want with '$frag': $(head -c 300 "$WORK/err.json")"
  fi
}

start_server "$WORK/serve.log" "$MODEL" -t 2 --max-model-len 8192 --num-blocks 600 --block-size 16 \
  --max-request-bytes 64K --timeout 2
grep -q "max request 65536 bytes, max connections 1024, timeout 2 s" "$WORK/serve.log" &&
  ok "the limits are in the start-up line" || bad "start-up line: $(grep 'config:' "$WORK/serve.log")"

# ---- body size, prompt tokens, max_tokens ----
head -c 70000 /dev/zero | tr '\0' ' ' >"$WORK/big.json"
expect_error 413 "over the limit of 65536 bytes" "a 70 KB body (Content-Length)" "$BASE/v1/completions" \
  --data-binary @"$WORK/big.json"
expect_error 413 "over the limit of 65536 bytes" "a 70 KB chunked body (no Content-Length)" \
  -H "Transfer-Encoding: chunked" "$BASE/v1/completions" --data-binary @"$WORK/big.json"
expect_error 400 "maximum context length is 8192" "a prompt of 8200 token ids" "$BASE/v1/completions" \
  -d "{\"prompt\":[$(seq -s, 1 8200)],\"max_tokens\":1}"
expect_error 400 "maximum context length is 8192" "prompt + max_tokens over max-model-len" "$BASE/v1/completions" \
  -d "{\"prompt\":[$(seq -s, 1 100)],\"max_tokens\":8100}"
expect_error 400 "max_tokens" "max_tokens 0" "$BASE/v1/completions" -d '{"prompt":"hi","max_tokens":0}'
[ "$(curl -s "$BASE/v1/completions" -d "{\"prompt\":[$(seq -s, 1 8100)],\"max_tokens\":92}" -o /dev/null -w '%{http_code}')" = 200 ] &&
  ok "prompt + max_tokens = max-model-len exactly -> 200" || bad "a request that just fits was refused"

# ---- slow and idle clients ----
s0=$(curl -s "$BASE/metrics" | grep '^cllm:request_success_total' | awk '{s += $NF} END {print s}')
cat >"$WORK/slow.py" <<'EOF'
# slow.py PORT MODE: connects and misbehaves; prints the seconds until the server closed the
# connection (or "open" after 15 s). MODE: idle (sends nothing), headers (one header byte a second),
# body (whole headers, then one body byte a second).
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
body = b'{"prompt":"Tell me everything","ignore_eos":true,"max_tokens":100}'
head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(1.0)
t0 = time.monotonic()
data = {"idle": b"", "headers": head + body, "body": body}[mode]
if mode == "body":
    s.sendall(head)
i = 0
while time.monotonic() - t0 < 15:
    if i < len(data):
        try:
            s.send(data[i:i + 1])
        except OSError:
            break
        i += 1
    try:
        if s.recv(4096) == b"":
            break
    except socket.timeout:
        continue
    except OSError:
        break
else:
    print("open")
    sys.exit(0)
print("%.1f" % (time.monotonic() - t0))
EOF
for mode in idle headers body; do
  t=$(python3 "$WORK/slow.py" "$PORT" $mode)
  if [ "$t" != open ] && [ "$(echo "$t >= 1.5 && $t <= 5" | bc)" = 1 ]; then
    ok "a client that is $mode-slow is dropped after $t s (--timeout 2)"
  else
    bad "a $mode-slow client: closed after $t s, want about 2"
  fi
done
grep -q "closed a connection that did not deliver a whole request within 2 s" "$WORK/serve.log" &&
  ok "the drop is logged" || bad "no log line for a dropped slow client"
# three trickling clients at once, then the engine must be idle and untouched
SLOW=()
for i in 1 2 3; do python3 "$WORK/slow.py" "$PORT" body >"$WORK/slow$i.out" & SLOW+=($!); done
sleep 1
[ "$(metric cllm:num_requests_running)" = 0 ] && [ "$(metric cllm:num_requests_waiting)" = 0 ] &&
  ok "while clients trickle their bodies, the engine has no request" ||
  bad "trickling clients reached the engine: running $(metric cllm:num_requests_running)"
wait "${SLOW[@]}"
[ "$(cat "$WORK"/slow?.out | grep -vc open)" = 3 ] && ok "three trickling clients dropped: $(cat "$WORK"/slow?.out | tr '\n' ' ')" ||
  bad "trickling clients: $(cat "$WORK"/slow?.out | tr '\n' ' ')"
s1=$(curl -s "$BASE/metrics" | grep '^cllm:request_success_total' | awk '{s += $NF} END {print s}')
[ "$(metric cllm:num_requests_running)" = 0 ] && [ "$(metric cllm:kv_cache_usage_perc)" = 0 ] && [ "$s0" = "$s1" ] &&
  ok "after the slow clients: no request running, all KV blocks free, no request finished ($s1)" ||
  bad "after the slow clients: running $(metric cllm:num_requests_running), usage $(metric cllm:kv_cache_usage_perc), finished $s0 -> $s1"
# a generation that takes longer than the timeout is not cut: sized from the measured speed to
# take about 3 s (over --timeout 2) on this machine
t0=$(date +%s.%N)
curl -s -m 60 "$BASE/v1/completions" -d '{"prompt":"Hello","max_tokens":300,"ignore_eos":true}' >/dev/null
n=$(echo "3 * 300 / ($(date +%s.%N) - $t0)" | bc)
[ "$n" -gt 8000 ] && n=8000
t0=$(date +%s.%N)
r=$(curl -s -m 120 "$BASE/v1/completions" -d "{\"prompt\":\"Hello\",\"max_tokens\":$n,\"ignore_eos\":true}")
dt=$(echo "$(date +%s.%N) - $t0" | bc)
if echo "$r" | jq -e --argjson n "$n" '.usage.completion_tokens == $n' >/dev/null; then
  if [ "$(echo "$dt > 2" | bc)" = 1 ]; then ok "a $n-token generation of ${dt%??????} s is not cut by --timeout 2"
  else echo "note: the $n-token generation took only $dt s: the long-request check proves nothing here"; fi
else
  bad "long generation ($n tokens): $(echo "$r" | head -c 300)"
fi
t0=$(date +%s.%N)
s=$(curl -sN -m 120 "$BASE/v1/completions" -d "{\"prompt\":\"Hello\",\"max_tokens\":$n,\"ignore_eos\":true,\"stream\":true}" |
  grep -c '"finish_reason":"length"')
dt=$(echo "$(date +%s.%N) - $t0" | bc)
[ "$s" = 1 ] && ok "a $n-token stream of ${dt%??????} s is not cut" || bad "long stream: no finish_reason length"

kill -TERM "$SPID"; wait "$SPID"; rc=$?
[ $rc = 0 ] && ok "clean exit after the slow clients" || bad "exit $rc: $(tail -3 "$WORK/serve.log")"

# ---- the connection limit: 4 served, the next 64 get 503, more are refused ----
# (a server of its own, whose timeout cannot close the connections the test holds open)
start_server "$WORK/serve2.log" "$MODEL" -t 1 --max-model-len 256 --num-blocks 64 --max-connections 4
cat >"$WORK/conns.py" <<'EOF'
# conns.py PORT: the connection limit of a server started with --max-connections 4.
import json, socket, sys, time
port = int(sys.argv[1])
req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n")
body = b'{"prompt":"Hi","max_tokens":4}'
fails = 0
def check(cond, what):
    global fails
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        fails += 1
def answer(s):
    """Reads one response: (status, body) or (None, b"") when the server closed first."""
    s.settimeout(10)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None, b"", {}
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdr = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    n = int(hdr.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return int(lines[0].split()[1]), rest[:n], hdr
def post(s):
    s.sendall(req % len(body) + body)
    return answer(s)
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", port))
r = post(extra)
try:
    err = json.loads(r[1])["error"]
except Exception:
    err = {}
check(r[0] == 503 and err.get("code") == 503 and "too many connections" in err.get("message", ""),
      "a 5th connection over --max-connections 4 -> 503 %s" % (r[1][:160],))
check(r[0] == 503 and r[2].get("connection", "").lower() == "close", "the 503 closes its connection")
extra.close()
codes = [post(s)[0] for s in held]
check(codes == [200] * 4, "the 4 connections within the limit are served: %s" % codes)
codes = [post(s)[0] for s in held]
check(codes == [200] * 4, "and keep being served on keep-alive: %s" % codes)
# past the overflow band: 4 held + 64 answered 503 -> the next one is closed unread
over = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
time.sleep(0.5)
refused = socket.create_connection(("127.0.0.1", port))
refused.settimeout(5)
try:
    refused.sendall(req % len(body) + body)
    got = refused.recv(100)
except OSError:
    got = b""
check(got == b"", "a connection past --max-connections + 64 is closed unread (got %r)" % got[:40])
for s in over + [refused]:
    s.close()
for s in held:
    s.close()
time.sleep(0.5)
s = socket.create_connection(("127.0.0.1", port))
check(post(s)[0] == 200, "once they close, a new connection is served")
s.close()
sys.exit(1 if fails else 0)
EOF
python3 "$WORK/conns.py" "$PORT" >"$WORK/conns.out" 2>&1; rc=$?
cat "$WORK/conns.out"
[ $rc = 0 ] || bad "connection limit checks (conns.py exit $rc)"
grep -q "over --max-connections 4" "$WORK/serve2.log" && ok "the over-limit connections are logged" ||
  bad "no log line for connections over the limit"
kill -TERM "$SPID"; wait "$SPID"; rc=$?
[ $rc = 0 ] && ok "clean exit after the connection checks" || bad "exit $rc: $(tail -3 "$WORK/serve2.log")"

# ---- connections per address ----
start_server "$WORK/serve3.log" "$MODEL" -t 1 --max-model-len 256 --num-blocks 64 --max-connections-per-ip 2
python3 - "$PORT" <<'EOF' || fail=1
import socket, sys, time
port = int(sys.argv[1])
a = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
time.sleep(0.3)
c = socket.create_connection(("127.0.0.1", port))
c.settimeout(5)
try:
    c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = c.recv(100)
except OSError:
    got = b""
a[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
a[0].settimeout(5)
first = a[0].recv(100)
ok = got == b"" and first.startswith(b"HTTP/1.1 200")
print(("ok: " if ok else "FAIL: ") + "a 3rd connection from one address over --max-connections-per-ip 2 is closed "
      "(got %r), the first 2 are served (%r)" % (got[:30], first[:15]))
sys.exit(0 if ok else 1)
EOF
kill -TERM "$SPID"; wait "$SPID"

# ---- bad values are refused on the command line ----
for args in "--max-connections 0" "--timeout -1" "--max-connections-per-ip x" "--generation-config foo"; do
  out=$("$CLLM" serve "$MODEL" $args 2>&1); rc=$?
  [ $rc = 2 ] && ok "serve $args: $(echo "$out" | head -1)" || bad "serve $args: rc $rc: $out"
done

finish
