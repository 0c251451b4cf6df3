# The e2e scenarios, sourced by e2e/run. Each runs in a subshell with `set -e`; state shared
# between scenarios goes through files in $E2E. The kubectl commands here are the runbooks'
# (docs/runbooks/).

k() { kubectl -n "$NS" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
jp() { k get "$1" -o "jsonpath=$2"; }
# eventually SECONDS COMMAND...: retries COMMAND every 0.1 s until it succeeds.
eventually() {
  local until=$(($(date +%s) + $1)); shift
  while ! "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$until" ] || { echo "timed out: $*"; return 1; }
    sleep 0.1
  done
}
now_ms() { date +%s%3N; }
# as USER ARGS...: kubectl as one of the human users of e2e/cluster's token file.
as() { local u="$1"; shift; kubectl --kubeconfig "$E2E/cluster/$u.kubeconfig" -n "$NS" "$@"; }
# as_operator ARGS...: kubectl as the operator's ServiceAccount.
as_operator() { kubectl --kubeconfig "$E2E/operator.kubeconfig" -n "$NS" "$@"; }
# refused RULE COMMAND...: COMMAND must fail with a message naming the webhook rule.
refused() {
  local rule="$1" out; shift
  if out="$("$@" 2>&1)"; then fail "allowed, expected a refusal by rule $rule: $*"; fi
  echo "refused: $out"
  grep -q "denied by rule \`$rule\`" <<<"$out" || fail "the refusal does not name rule $rule: $out"
}
# webhook_down COMMAND...: runs COMMAND with the webhook process stopped, then restarts it.
# webhook_configurations: the chart's webhook configurations as e2e registers them (by URL).
webhook_configurations() {
  "$HELM" template janus "$ROOT/charts/janus-operator" --namespace "$NS" --show-only templates/webhook.yaml |
    kubectl create --dry-run=client --validate=false -o json -f - |
    python3 "$HERE/webhook-config.py" "$WH_PORT" "$WH/ca.crt"
}
webhook_down() {
  stop_webhook
  local rc=0
  "$@" || rc=$?
  start_webhook || fail "the webhook did not come back"
  return "$rc"
}
has_phase() { [ -n "$(jp "promotionrequest/$1" '{.status.phase}')" ]; }
rfc3339_ago() { date -u -d "$1 hours ago" +%Y-%m-%dT%H:%M:%SZ; }

write_run() { # write_run NAME SFT_SEED
  cat <<YAML
apiVersion: janus.torghut.io/v1alpha1
kind: JanusRun
metadata:
  name: $1
spec:
  dataset: {uri: datasets/d1, sha256: $(cat "$E2E/dataset-sha")}
  training:
    promptTemplate: {uri: config/prompt-template.txt, sha256: $(cat "$E2E/prompt-sha")}
    sft: {seed: $2, epochs: 2, learningRate: 0.005}
    grpo: {seed: $(($2 + 1)), steps: 20, groupSize: 4, learningRate: 0.002, klCoef: 0.04, clipRange: 0.2, maxGradNorm: 1.0}
  artifacts: {claimName: janus-artifacts}
  heldOutFrom: "2023-09-01"
  # Several walk-forward folds in the held-out window (the defaults, 60/40/40 days, give one
  # here, and gate1 has no fold dispersion to measure from one).
  evaluation:
    walk_forward: {train_days: 30, test_days: 20, step_days: 20}
YAML
}

# ---------- the decision service's own runtime statistics (docs/serving.md) ----------
HELD_OUT_FROM=2023-09-01
# serve_stats REQUEST RELEASE REPLICA [ARGS...]: a decision service following REQUEST as the
# chart deploys it: the chart's decision-service ServiceAccount and Role for REQUEST (release
# RELEASE) and its statistics arguments (the statistics key, --stats-interval: 2 s here, the
# chart's default is 300), as replica REPLICA, inference budget 1 s (a shared CI machine);
# waits for its model; prints its port, its PID in $E2E/pid-serve-REPLICA.
serve_stats() {
  local req="$1" rel="$2" rep="$3" port; shift 3
  if [ ! -f "$E2E/$rel.kubeconfig" ]; then
    "$HELM" template "$rel" "$ROOT/charts/janus-operator" --namespace "$NS" \
      --set "decisionService.enabled=true,decisionService.promotionRequest=$req,artifactsClaim=artifacts" \
      --show-only templates/decision-service-rbac.yaml | kubectl apply -n "$NS" -f - >/dev/null
    sa_kubeconfig "$rel-janus-operator-decision" "$E2E/$rel.kubeconfig" || fail "no token for $rel"
  fi
  port=$(free_port)
  KUBECONFIG="$E2E/$rel.kubeconfig" POD_NAMESPACE="$NS" JANUS_SERVICE_ACCOUNT="$rel-janus-operator-decision" \
    janus serve --promotion-request "$NS/$req" --artifacts-root "$ART" --listen "127.0.0.1:$port" \
    --stats-key "$E2E/stats.key" --stats-interval "${E2E_STATS_INTERVAL:-2}" --replica "$rep" \
    --timeout-ms 1000 --log-format text "$@" >>"$LOGS/serve-$rep.log" 2>&1 &
  echo $! >>"$PIDFILE"
  echo $! >"$E2E/pid-serve-$rep"
  eventually 60 sh -c "curl -fsS http://127.0.0.1:$port/v1/runtime | grep -q '\"model\":\"loaded\"'" ||
    fail "replica $rep never loaded its model (see $LOGS/serve-$rep.log)"
  echo "$port"
}
# stop_serve REPLICA SIGNAL: signals the replica and waits for it to exit.
stop_serve() {
  local pid; pid="$(cat "$E2E/pid-serve-$1")"
  kill "-$2" "$pid"
  for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
  fail "replica $1 still runs 10 s after SIG$2"
}
# replay PORT RUN COUNT PREFIX: COUNT held-out events of RUN's labelled events, stamped now, sent
# to the service one by one (event ids PREFIX-<id>); prints {"sent", "by_source"}.
replay() { python3 "$HERE/replay.py" send "$1" "$ART/runs/$2/event-car.json" "$HELD_OUT_FROM" "$3" "$4"; }
# stats CANDIDATE STAGE [REPLICA]: totals of the statistics files (e2e/stats.py sum).
stats() { python3 "$HERE/stats.py" sum "$ART/candidates/$1/runtime/$2" ${3:+"$3"}; }
stat() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# decisions_counted CANDIDATE STAGE REPLICA N: the replica's files count exactly N decisions.
decisions_counted() { [ "$(stat "$(stats "$1" "$2" "$3")" decisions)" = "$4" ]; }
# serve_served PORT STAGE: the service serves STAGE.
serve_served() { curl -fsS "http://127.0.0.1:$1/v1/runtime" | grep -q "\"stage\":\"$2\""; }
# set_paper_window HOURS: the e2e policy with gate3's paper window set to HOURS.
set_paper_window() {
  python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); p["gate3_paper_trading"]["min_window_hours"]=float(sys.argv[2]); print(json.dumps(p))' \
    "$HERE/policy.json" "$1" >"$E2E/policy-window.json"
  kubectl -n "$POLICY_NS" create configmap janus-gate-policy --from-file=gate-policy.json="$E2E/policy-window.json" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}
# replay_shadow CANDIDATE RUN REQUEST...: shadow windows for requests about to be created, made
# by a replay: the decision service's own code on CANDIDATE's model, its configuration from a
# file naming each REQUEST in turn, 3 held-out events each, statistics `source: simulation`
# (unsigned: whoever replays holds no key). The policy lets a simulation stand in for shadow ->
# paper (gate0's allow_simulation, default true); scenarios 1 and 2 use the real service.
replay_shadow() {
  local cand="$1" run="$2" port file="$E2E/replay-$1.json"; shift 2
  python3 -c 'import json,sys; print(json.dumps({"stage": "shadow", "candidate": sys.argv[1], "promotionRequest": "", "modelUri": sys.argv[2], "modelSha256": sys.argv[3], "tradingEnabled": "false", "forceFallback": "false"}))' \
    "$cand" "$(jp "januscandidate/$cand" '{.spec.model.uri}')" "$(jp "januscandidate/$cand" '{.spec.model.sha256}')" >"$file"
  port=$(free_port)
  janus serve --runtime-file "$file" --artifacts-root "$ART" --simulation --replica "replay-$cand" \
    --stats-interval 3600 --timeout-ms 1000 --listen "127.0.0.1:$port" --log-format text >>"$LOGS/serve-replay-$cand.log" 2>&1 &
  echo $! >>"$PIDFILE"; echo $! >"$E2E/pid-serve-replay-$cand"
  eventually 60 sh -c "curl -fsS http://127.0.0.1:$port/v1/runtime | grep -q '\"model\":\"loaded\"'" || fail "the replay never loaded $cand's model"
  python3 "$HERE/replay.py" windows "$port" "$file" "$ART/runs/$run/event-car.json" "$HELD_OUT_FROM" "$@"
  stop_serve "replay-$cand" TERM
}

s1_run_to_candidate() {
  janus scenario --seed 12 --symbols 80 --days 300 --events 3000 --out "$ART/datasets/d1" >/dev/null
  # The dataset's pinned digest, as its curator publishes it.
  janus label --dataset "$ART/datasets/d1" --out "$E2E/probe" >/dev/null
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lineage"]["dataset_snapshot_hash"])' \
    "$E2E/probe/event-car.json" >"$E2E/dataset-sha"
  mkdir -p "$ART/config"
  cp "$ROOT/config/prompt-template.txt" "$ART/config/"
  sha256sum "$ART/config/prompt-template.txt" | cut -d' ' -f1 >"$E2E/prompt-sha"

  write_run r1 7 | k apply -f -
  k wait janusrun/r1 --for=condition=Succeeded --timeout=300s
  k get janusrun r1
  [ "$(jp janusrun/r1 '{.status.phase}')" = Succeeded ] || fail "run phase"
  [ "$(jp janusrun/r1 '{.status.candidate}')" = r1-candidate ] || fail "run names no candidate"
  k wait januscandidate/r1-candidate --for=condition=EvidenceComplete --timeout=60s || { k get januscandidate r1-candidate -o yaml; exit 1; }
  k wait januscandidate/r1-candidate --for=condition=Reproducible --timeout=60s
  k get januscandidate r1-candidate
  # Five step Jobs, each with one pod, and lineage that matches the artifacts on disk.
  [ "$(k get jobs -l janus.torghut.io/run=r1-run -o name | wc -l)" = 5 ] || fail "not 5 Jobs"
  local evidence_hash onnx_sha
  evidence_hash="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifest_hash"])' "$ART/runs/r1/evaluation/evidence.json")"
  [ "$(jp januscandidate/r1-candidate '{.spec.lineage.evidenceManifestHash}')" = "$evidence_hash" ] || fail "candidate lineage: evidence hash"
  [ "$(jp januscandidate/r1-candidate '{.status.evidenceManifestHash}')" = "$evidence_hash" ] || fail "candidate status: evidence hash"
  onnx_sha="$(sha256sum "$ART/runs/r1/models/grpo/model.onnx" | cut -d' ' -f1)"
  [ "$(jp januscandidate/r1-candidate '{.spec.model.sha256}')" = "$onnx_sha" ] || fail "candidate model digest"
  [ "$(jp janusrun/r1 '{.status.lineage.datasetSnapshotHash}')" = "$(cat "$E2E/dataset-sha")" ] || fail "dataset hash"
  k get events --field-selector involvedObject.name=r1 -o custom-columns=REASON:.reason --no-headers | sort | uniq -c
  # Every step ran as the step ServiceAccount the chart creates, without an API token.
  [ "$(k get pods -l janus.torghut.io/run=r1-run -o jsonpath='{range .items[*]}{.spec.serviceAccountName}{"\n"}{end}' | sort -u)" = "$STEP_SA" ] ||
    fail "step pods ran as $(k get pods -l janus.torghut.io/run=r1-run -o jsonpath='{..serviceAccountName}')"
}

s2_promotions() {
  # The request waits at shadow: its runtime ConfigMap says shadow, trading off, and gate0 has no
  # statistics yet.
  cat <<YAML | k apply -f -
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: r1-paper}
spec: {candidate: r1-candidate, target: paper}
YAML
  k wait promotionrequest/r1-paper --for=jsonpath='{.status.phase}'=Blocked --timeout=60s
  eventually 10 k get configmap r1-paper-runtime
  [ "$(jp configmap/r1-paper-runtime '{.data.stage}')" = shadow ] || fail "no shadow runtime ConfigMap"
  [ "$(jp configmap/r1-paper-runtime '{.data.tradingEnabled}')" = false ] || fail "shadow trades"
  jp promotionrequest/r1-paper '{.status.blockers}' | grep -q "no shadow or paper runtime statistics: none under candidates/r1-candidate/runtime/shadow/" ||
    fail "gate0 does not say it has no statistics: $(jp promotionrequest/r1-paper '{.status.blockers}')"
  # The decision service serves the request in shadow, as the chart deploys it; the held-out
  # events are sent to it; it writes its own signed statistics. The test writes none.
  local port out
  port="$(serve_stats r1-paper s2 s2-a)"
  out="$(replay "$port" r1 200 s2-shadow)"
  echo "shadow: $out"
  [ "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1])["by_source"]; print(d.get("model",0)+d.get("fallback",0))' "$out")" = 200 ] ||
    fail "shadow did not decide every event: $out"
  eventually 20 decisions_counted r1-candidate shadow s2-a 200 || fail "the shadow statistics never counted 200 decisions: $(stats r1-candidate shadow)"
  echo "shadow statistics: $(stats r1-candidate shadow)"
  # The operator looks again (it re-reads every minute, or on any change to the request).
  poke r1-paper
  k wait promotionrequest/r1-paper --for=condition=Promoted --timeout=60s || { k get promotionrequest r1-paper -o yaml; exit 1; }
  eventually 10 k get configmap r1-paper-runtime
  [ "$(jp configmap/r1-paper-runtime '{.data.stage}')" = paper ] || fail "runtime stage"
  [ "$(jp configmap/r1-paper-runtime '{.data.tradingEnabled}')" = true ] || fail "trading not enabled"
  [ "$(jp configmap/r1-paper-runtime '{.data.modelSha256}')" = "$(jp januscandidate/r1-candidate '{.spec.model.sha256}')" ] || fail "runtime model digest"
  # Every file under runtime/ is the service's: signed, by its replica, as a decision service.
  local all
  all="$(stats r1-candidate shadow)"
  [ "$(stat "$all" files)" = "$(stat "$all" signed)" ] && [ "$(stat "$all" replicas)" = "['s2-a']" ] &&
    [ "$(stat "$all" sources)" = "['decision-service']" ] || fail "a shadow file not the service's: $all"
  # The signature is the one docs/serving.md specifies, recomputed independently (e2e/stats.py).
  python3 "$HERE/stats.py" verify "$ART/candidates/r1-candidate/runtime/shadow" "$E2E/stats.key"

  # Paper: the same service follows the request to paper and decides held-out events there.
  eventually 20 serve_served "$port" paper || fail "the service never served paper"
  out="$(replay "$port" r1 200 s2-paper)"
  echo "paper: $out"
  eventually 20 decisions_counted r1-candidate paper s2-a 200 || fail "the paper statistics never counted 200 decisions: $(stats r1-candidate paper)"
  stop_serve s2-a TERM
  echo "paper statistics: $(stats r1-candidate paper)"

  # Created by a researcher (the webhook stamps her as the creator).
  cat <<YAML | as rita apply -f -
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: r1-canary}
spec:
  candidate: r1-candidate
  target: canary
  canary: {symbols: ["600000.SH"], maxOrderNotional: 100000, maxGrossNotional: 1000000, maxNetNotional: 250000}
YAML
  k wait promotionrequest/r1-canary --for=jsonpath='{.status.phase}'=Blocked --timeout=60s
  k wait promotionrequest/r1-canary --for=condition=Approved=False --timeout=10s
  echo "blocked without approval: $(jp promotionrequest/r1-canary '{.status.blockers}')"
  jp promotionrequest/r1-canary '{.metadata.annotations.janus\.torghut\.io/created-by}' | grep -q '"by":"rita"' || fail "creator not stamped"
  # gate3 reads the service's paper window: seconds long, under the policy's 72 h.
  canary_blockers() { jp promotionrequest/r1-canary '{.status.blockers}'; }
  canary_blockers | grep -q "stability window (hours)" || fail "gate3 does not measure the paper window: $(canary_blockers)"

  # Forged paper windows beside it, each with a valid content hash: a hand-written file claiming
  # 5000 decisions (no signature), one signed with another key, and a replay's simulation
  # stretched to a 72 h window. None counts; each is named with its reason.
  local dir="$ART/candidates/r1-candidate/runtime/paper" src replay_port
  src="$(ls "$dir"/s2-a-*.json | head -1)"
  python3 "$HERE/stats.py" forge "$src" "$dir/forged-unsigned.json" unsigned
  python3 "$HERE/stats.py" forge "$src" "$dir/forged-badsig.json" badsig
  # The replay: the service's own code on r1-paper's configuration from a file (as `janus demo`
  # replays), its statistics `source: simulation`, unsigned (a researcher holds no key).
  k get configmap r1-paper-runtime -o jsonpath='{.data}' >"$E2E/r1-paper-runtime.json"
  replay_port=$(free_port)
  janus serve --runtime-file "$E2E/r1-paper-runtime.json" --artifacts-root "$ART" --simulation --replica replay \
    --stats-interval 3600 --timeout-ms 1000 --listen "127.0.0.1:$replay_port" --log-format text >"$LOGS/serve-replay.log" 2>&1 &
  echo $! >>"$PIDFILE"; echo $! >"$E2E/pid-serve-replay"
  eventually 60 sh -c "curl -fsS http://127.0.0.1:$replay_port/v1/runtime | grep -q '\"model\":\"loaded\"'"
  replay "$replay_port" r1 20 replay >/dev/null
  stop_serve replay TERM
  python3 "$HERE/stats.py" forge "$(ls "$dir"/replay-*.json)" "$dir/replay-72h.json" stretch72
  rm "$dir"/replay-2*.json
  poke r1-canary
  eventually 30 sh -c "kubectl -n $NS get promotionrequest r1-canary -o jsonpath='{.status.blockers}' | grep -q replay-72h.json" ||
    fail "the forged files are not named: $(canary_blockers)"
  echo "with forged windows: $(canary_blockers)"
  canary_blockers | grep -q "forged-unsigned.json: unsigned" || fail "the hand-written file is not refused as unsigned"
  canary_blockers | grep -q "forged-badsig.json: the signature does not verify" || fail "the badly signed file is not refused"
  canary_blockers | grep -q "replay-72h.json: is a simulation, which the policy does not accept for the paper window" ||
    fail "the replay is not refused as a simulation"
  canary_blockers | grep -q "stability window (hours)" || fail "a forged 72 h window counted: $(canary_blockers)"
  [ "$(jp promotionrequest/r1-canary '{.status.phase}')" = Blocked ] || fail "promoted on forged windows"
  rm "$dir"/forged-*.json "$dir/replay-72h.json"
  # A paper window CI can serve is seconds long: gate3's window is set to 1.8 s from here on, as a
  # change to the policy in Git would (everything else as e2e/policy.json).
  set_paper_window 0.0005
  poke r1-canary
  eventually 30 sh -c "! kubectl -n $NS get promotionrequest r1-canary -o jsonpath='{.status.blockers}' | grep -q 'stability window'" ||
    fail "gate3 still fails on the served paper window: $(canary_blockers)"
  # On-call records the drills and the runbook (stamped by the webhook), but the rollback drill
  # is 100 h old (policy: 72 h); an approver who did not create the request approves.
  as carol annotate promotionrequest r1-canary \
    janus.torghut.io/record-kill-switch-drill="$(rfc3339_ago 2)" janus.torghut.io/validate-runbook=true \
    janus.torghut.io/record-rollback-drill="$(rfc3339_ago 100)"
  as alice annotate promotionrequest r1-canary janus.torghut.io/approve=true
  jp promotionrequest/r1-canary '{.metadata.annotations.janus\.torghut\.io/approval}' | grep -q '"by":"alice"' || fail "approval not stamped"
  k wait promotionrequest/r1-canary --for=condition=Approved --timeout=30s
  k wait promotionrequest/r1-canary --for=condition=RollbackDrillFresh=False --timeout=10s
  [ "$(jp promotionrequest/r1-canary '{.status.phase}')" = Blocked ] || fail "promoted with a stale drill"
  echo "blocked with a stale drill: $(jp promotionrequest/r1-canary '{.status.blockers}')"
  # A fresh rollback drill (docs/runbooks/rollback-drill.md records it this way).
  as carol annotate promotionrequest r1-canary janus.torghut.io/record-rollback-drill=now
  k wait promotionrequest/r1-canary --for=condition=Promoted --timeout=30s
  [ "$(jp promotionrequest/r1-canary '{.status.approval.approvedBy}')" = alice ] || fail "approver on record"
  [ "$(jp promotionrequest/r1-canary '{.status.history[-1].actor}')" = alice ] || fail "history actor"
  # Alice's approval is bound to r1-canary: kept for scenario 31, which copies it elsewhere.
  jp promotionrequest/r1-canary '{.metadata.annotations.janus\.torghut\.io/approval}' >"$E2E/alice-approval"
  [ "$(jp promotionrequest/r1-canary '{.status.stage}')" = canary ] || fail "stage"
  eventually 10 k get configmap r1-canary-runtime
  jp configmap/r1-canary-runtime '{.data.canaryLimits}' | grep -q maxGrossNotional || fail "canary limits"
  k get promotionrequests
}

s12_stats_restarts() {
  # A replica serving r1-paper (at paper since scenario 2) stopped mid-window and restarted.
  # SIGTERM: its open window is flushed on the way out, so every decision is counted exactly
  # once across its files. SIGKILL: at most the window since its last flush is lost, and the
  # operator reports the hole as a gap (its log) and counts only what follows it.
  local port sent=0 n t0 restart gaps
  # SIGTERM, with an interval longer than the test: only the shutdowns write.
  port="$(E2E_STATS_INTERVAL=3600 serve_stats r1-paper s2 s12-term)"
  replay "$port" r1 30 s12-a >/dev/null
  stop_serve s12-term TERM
  decisions_counted r1-candidate paper s12-term 30 || fail "SIGTERM lost decisions: $(stats r1-candidate paper s12-term)"
  port="$(E2E_STATS_INTERVAL=3600 serve_stats r1-paper s2 s12-term)"
  replay "$port" r1 20 s12-b >/dev/null
  stop_serve s12-term TERM
  decisions_counted r1-candidate paper s12-term 50 || fail "not each decision once: $(stats r1-candidate paper s12-term)"
  echo "SIGTERM and restart: 50 decisions sent, $(stats r1-candidate paper s12-term)"

  # SIGKILL, flushing every 2 s: 30 decisions flushed, then 10 more, then killed.
  port="$(serve_stats r1-paper s2 s12-kill)"
  replay "$port" r1 30 s12-c >/dev/null
  eventually 10 decisions_counted r1-candidate paper s12-kill 30 || fail "never flushed: $(stats r1-candidate paper s12-kill)"
  replay "$port" r1 10 s12-d >/dev/null
  stop_serve s12-kill KILL
  t0=$(now_ms)
  n="$(stat "$(stats r1-candidate paper s12-kill)" decisions)"
  echo "SIGKILL: 40 sent, $n counted"
  [ "$n" -ge 30 ] && [ "$n" -le 40 ] || fail "SIGKILL: $n of 40 decisions counted"
  port="$(serve_stats r1-paper s2 s12-kill)"
  restart=$(($(now_ms) - t0))
  replay "$port" r1 10 s12-e >/dev/null
  eventually 10 decisions_counted r1-candidate paper s12-kill $((n + 10)) || fail "after the restart: $(stats r1-candidate paper s12-kill)"
  sleep 2   # a paper window longer than the policy's 1.8 s after the gap
  stop_serve s12-kill TERM
  gaps="$(python3 "$HERE/stats.py" gaps "$ART/candidates/r1-candidate/runtime/paper" s12-kill)"
  echo "gaps in replica s12-kill's windows: $gaps (restart took $restart ms)"
  python3 -c 'import json,sys; g=json.loads(sys.argv[1]); assert len(g)==1, g; assert g[0]["seconds"] <= 2 + int(sys.argv[2])/1000 + 1, g' \
    "$gaps" "$restart" || fail "not one gap of at most a flush interval and the restart"
  # The operator reads r1-candidate's paper windows for r1-canary: it names the gap.
  local from
  from="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["from"])' "$gaps")"
  poke r1-canary
  eventually 30 sh -c "grep 'a gap in the runtime statistics' $LOGS/operator-*.log | grep -q '$from'" ||
    fail "the operator did not report the gap from $from"
  grep -h 'a gap in the runtime statistics' "$LOGS"/operator-*.log | grep "$from" | tail -1
}

# decide PORT: one decision from the decision service, as "source reason".
decide() {
  curl -fsS -X POST "http://127.0.0.1:$1/v1/decide" -d "{\"event\": {\"event_id\": \"e$RANDOM\", \"timestamp\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"symbol\": \"600000.SH\", \"event_type\": \"dividend\", \"title\": \"600000.SH raises its dividend\"}}" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["source"], d["reason"])'
}

s3_kill_switch() {
  [ "$(jp configmap/r1-canary-runtime '{.data.tradingEnabled}')" = true ] || fail "canary not trading before the drill"
  # The decision service, following the canary's PromotionRequest and its runtime ConfigMap
  # through the API as the chart's decision-service ServiceAccount, which may read those two
  # objects and nothing else (it latches the kill switch from its own watch of the request).
  if kubectl --kubeconfig "$E2E/decision.kubeconfig" -n "$NS" get configmap janus-gate-policy >/dev/null 2>&1; then
    fail "the decision service's ServiceAccount can read other ConfigMaps"
  fi
  if kubectl --kubeconfig "$E2E/decision.kubeconfig" -n "$NS" get configmaps >/dev/null 2>&1; then
    fail "the decision service's ServiceAccount can list every ConfigMap"
  fi
  local port
  port=$(free_port)
  KUBECONFIG="$E2E/decision.kubeconfig" janus serve --promotion-request "$NS/r1-canary" \
    --artifacts-root "$ART" --listen "127.0.0.1:$port" --log-format text >"$LOGS/serve.log" 2>&1 &
  echo $! >>"$PIDFILE"
  eventually 30 sh -c "curl -fsS http://127.0.0.1:$port/v1/runtime | grep -q '\"model\":\"loaded\"'"
  local before
  before="$(decide "$port")"
  echo "before: $before"
  case "$before" in model*|fallback*) ;; *) fail "the service is not deciding before the kill switch: $before" ;; esac

  local t0 t1 t2
  t0=$(now_ms)
  k patch promotionrequest r1-canary --type merge -p '{"spec":{"killSwitch":true}}'
  until [ "$(jp configmap/r1-canary-runtime '{.data.tradingEnabled}')" = false ]; do
    [ $(($(now_ms) - t0)) -lt 10000 ] || fail "trading still enabled after 10 s"
    sleep 0.05
  done
  t1=$(now_ms)
  until [ "$(decide "$port" | cut -d' ' -f1)" = halted ]; do
    [ $(($(now_ms) - t0)) -lt 10000 ] || fail "the decision service still trades 10 s after the kill switch"
    sleep 0.02
  done
  t2=$(now_ms)
  local ms=$((t1 - t0))
  echo "${ms} ms to the runtime ConfigMap, $((t2 - t0)) ms to the decision service's first halted decision" >"$E2E/kill-switch-latency"
  echo "kill switch → tradingEnabled=false in ${ms} ms; decisions halted after $((t2 - t0)) ms"
  [ $((t2 - t0)) -lt 2000 ] || fail "the decision service halted after $((t2 - t0)) ms (> 2 s)"
  [ "$(jp configmap/r1-canary-runtime '{.data.forceFallback}')" = true ] || fail "fallback not forced"
  k wait promotionrequest/r1-canary --for=condition=KillSwitchEngaged --timeout=10s
  k wait promotionrequest/r1-canary --for=jsonpath='{.status.phase}'=Halted --timeout=10s
  [ "$ms" -lt 2000 ] || fail "kill switch took ${ms} ms (> 2 s)"
  # The switch latches: clearing it is refused while the webhook runs ...
  refused kill-switch-latches k patch promotionrequest r1-canary --type merge -p '{"spec":{"killSwitch":false}}'
  # ... and with the webhook down (updates fail open), clearing it does not re-promote.
  webhook_down k patch promotionrequest r1-canary --type merge -p '{"spec":{"killSwitch":false}}'
  sleep 2
  [ "$(jp promotionrequest/r1-canary '{.status.phase}')" = Halted ] || fail "clearing the switch re-promoted"
  [ "$(jp configmap/r1-canary-runtime '{.data.tradingEnabled}')" = false ] || fail "trading re-enabled"
}

s4_restart() {
  echo 3 >"$E2E_STEP_DELAY_FILE"
  write_run r2 11 | k apply -f -
  eventually 60 k get job r2-label
  # Kill the leader while the label step runs, before it can record anything more.
  kill -9 "$(cat "$E2E/pid-op-a")"
  echo "killed op-a while $(jp janusrun/r2 '{.status.currentStep}') ran"
  echo 0 >"$E2E_STEP_DELAY_FILE"
  start_operator op-b
  wait_leader op-b || fail "op-b never took the lease"
  k wait janusrun/r2 --for=condition=Succeeded --timeout=300s
  k get jobs -l janus.torghut.io/run=r2-run
  [ "$(k get jobs -l janus.torghut.io/run=r2-run -o name | wc -l)" = 5 ] || fail "not exactly 5 Jobs"
  [ "$(k get pods -l janus.torghut.io/run=r2-run -o name | wc -l)" = 5 ] || fail "a step ran twice"
  k wait januscandidate/r2-candidate --for=condition=EvidenceComplete --timeout=60s
}

s5_malformed() {
  local out
  if out=$(cat <<YAML | k apply -f - 2>&1
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: bad-target}
spec: {candidate: r1-candidate, target: live}
YAML
  ); then fail "unknown target accepted"; fi
  echo "unknown target: $out"
  if out=$(cat <<YAML | k apply -f - 2>&1
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: bad-limits}
spec:
  candidate: r1-candidate
  target: canary
  canary: {symbols: ["600000.SH"], maxOrderNotional: -1, maxGrossNotional: 1000000, maxNetNotional: 250000}
YAML
  ); then fail "negative limit accepted"; fi
  echo "negative limit: $out"
  if out=$(write_run bad-hash 7 | sed 's/sha256: [0-9a-f]\{64\}}/sha256: not-a-hash}/' | k apply -f - 2>&1); then
    fail "bad hash accepted"
  fi
  echo "bad hash: $out"

  # A hand-made candidate is refused: only the operator writes candidates.
  forged_candidate() {
    cat <<YAML
apiVersion: janus.torghut.io/v1alpha1
kind: JanusCandidate
metadata: {name: forged}
spec:
  runRef: r1
  model: {uri: runs/r1/models/grpo/model.onnx, sha256: $(jp januscandidate/r1-candidate '{.spec.model.sha256}'), format: onnx}
  lineage: {}
YAML
  }
  forged_candidate >"$E2E/forged.yaml"
  refused candidates-are-operator-only k apply -f "$E2E/forged.yaml"
  # Made with the operator's own identity (an operator bug), it still never has complete evidence.
  as_operator apply --server-side --field-manager e2e-forger -f "$E2E/forged.yaml"
  k wait januscandidate/forged --for=condition=EvidenceComplete=False --timeout=60s
  echo "forged: $(jp januscandidate/forged '{.status.conditions[?(@.type=="EvidenceComplete")].message}')"
  cat <<YAML | k apply -f -
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: forged-paper}
spec: {candidate: forged, target: paper}
YAML
  k wait promotionrequest/forged-paper --for=jsonpath='{.status.phase}'=Blocked --timeout=60s

  # Tamper with r2's evidence on the volume: the candidate loses it, and is never promoted.
  python3 - "$ART/runs/r2/evaluation/evidence.json" <<'PY'
import json, sys
p = sys.argv[1]
e = json.load(open(p))
e["metrics"]["sr"] = 9.99
open(p, "w").write(json.dumps(e))
PY
  as_operator annotate januscandidate r2-candidate e2e/poke="$(date +%s)" --overwrite
  k wait januscandidate/r2-candidate --for=condition=EvidenceComplete=False --timeout=60s
  echo "tampered: $(jp januscandidate/r2-candidate '{.status.conditions[?(@.type=="EvidenceComplete")].message}')"
  cat <<YAML | k apply -f -
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: r2-paper}
spec: {candidate: r2-candidate, target: paper}
YAML
  k wait promotionrequest/r2-paper --for=jsonpath='{.status.phase}'=Blocked --timeout=60s
  sleep 2
  [ "$(jp promotionrequest/r2-paper '{.status.phase}')" = Blocked ] || fail "tampered candidate promoted"
  ! k get configmap r2-paper-runtime 2>/dev/null || fail "runtime ConfigMap written for a tampered candidate"
}

s6_two_replicas() {
  start_operator op-c
  local standby_port leader_port
  standby_port=$(cat "$E2E/port-op-c")
  leader_port=$(cat "$E2E/port-op-b")
  eventually 20 curl -fsS "http://127.0.0.1:$standby_port/readyz"
  sleep 2
  [ "$(leader)" = op-b ] || fail "the leader changed when a standby started"
  # (Read whole, then searched: `curl | grep -q` fails under pipefail when grep stops early.)
  local standby_metrics leader_metrics
  standby_metrics="$(curl -fsS "http://127.0.0.1:$standby_port/metrics")"
  leader_metrics="$(curl -fsS "http://127.0.0.1:$leader_port/metrics")"
  grep -q '^janus_operator_leader 0' <<<"$standby_metrics" || fail "standby claims to lead"
  if grep -q '^janus_reconcile_total' <<<"$standby_metrics"; then fail "the standby reconciled"; fi
  grep -q '^janus_reconcile_total' <<<"$leader_metrics" || fail "the leader has no reconciles"
  grep '^promotion_attempt_total' <<<"$leader_metrics" || true
  local t0 t1
  t0=$(now_ms)
  kill -9 "$(cat "$E2E/pid-op-b")"
  wait_leader op-c || fail "op-c never took over"
  t1=$(now_ms)
  echo "$((t1 - t0)) ms" >"$E2E/handover-latency"
  echo "handover in $((t1 - t0)) ms"
  # The new leader reconciles: a new request is decided.
  cat <<YAML | k apply -f -
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: after-handover}
spec: {candidate: r1-candidate, target: paper}
YAML
  eventually 30 has_phase after-handover
  echo "after handover: $(jp promotionrequest/after-handover '{.status.phase}') $(jp promotionrequest/after-handover '{.status.blockers}')"
}

s7_failed_run() {
  # A run pinned to a dataset digest the files do not have: its label step refuses, and the run
  # fails with that reason (docs/runbooks/stuck-run.md reads it this way).
  write_run r-bad-pin 21 | sed "s/sha256: $(cat "$E2E/dataset-sha")/sha256: $(printf 'f%.0s' $(seq 64))/" | k apply -f -
  k wait janusrun/r-bad-pin --for=condition=Succeeded=False --timeout=120s
  k get janusrun r-bad-pin
  local why
  why="$(jp janusrun/r-bad-pin '{.status.conditions[?(@.type=="Succeeded")].message}')"
  echo "reason: $why"
  echo "$why" | grep -q "step label failed" || fail "reason does not name the step"
  echo "$why" | grep -q "refusing to label a different dataset" || fail "reason does not say why"
  [ "$(jp janusrun/r-bad-pin '{.status.phase}')" = Failed ] || fail "phase"
  [ "$(k get jobs -l janus.torghut.io/run=r-bad-pin-run -o name | wc -l)" = 1 ] || fail "steps after a failure"
  ! k get januscandidate r-bad-pin-candidate 2>/dev/null || fail "a failed run produced a candidate"
  # The Event follows the status write (events are best effort), so it may land a moment later.
  eventually 10 sh -c "kubectl -n $NS get events --field-selector involvedObject.name=r-bad-pin,type=Warning \
    -o custom-columns=REASON:.reason --no-headers | grep -q StepFailed" || fail "no warning event"
}

s8_rollback_drill() {
  # docs/runbooks/rollback-drill.md: roll the paper request back one stage, see trading stop,
  # and record the drill's time where gate4 reads it.
  [ "$(jp configmap/r1-paper-runtime '{.data.tradingEnabled}')" = true ] || fail "paper not trading before the drill"
  k annotate promotionrequest r1-paper janus.torghut.io/rollback-reason="drill: rollback rehearsal $(date -u +%F)"
  k wait promotionrequest/r1-paper --for=jsonpath='{.status.phase}'=RolledBack --timeout=30s
  [ "$(jp promotionrequest/r1-paper '{.status.stage}')" = shadow ] || fail "not one stage down"
  eventually 10 sh -c "[ \"\$(kubectl -n $NS get configmap r1-paper-runtime -o jsonpath='{.data.tradingEnabled}')\" = false ]"
  jp promotionrequest/r1-paper '{.status.history[-1]}'; echo
  jp promotionrequest/r1-paper '{.status.history[-1].reason}' | grep -q "drill: rollback rehearsal" || fail "history lacks the reason"
  # Final for this request: nothing re-promotes it.
  sleep 2
  [ "$(jp promotionrequest/r1-paper '{.status.phase}')" = RolledBack ] || fail "re-promoted after a rollback"
}

s9_unbacked_trading() {
  # The leader audits runtime ConfigMaps (every second here): trading enabled by a ConfigMap
  # no promoted request wrote is a gate bypass, counted in janus_runtime_unbacked_trading.
  local port
  port=$(cat "$E2E/port-$(leader)")
  unbacked() { curl -fsS "http://127.0.0.1:$port/metrics" | awk '$1 == "janus_runtime_unbacked_trading" {print $2}'; }
  wait_unbacked() { # wait_unbacked VALUE
    for _ in $(seq 100); do [ "$(unbacked)" = "$1" ] && return 0; sleep 0.1; done
    fail "janus_runtime_unbacked_trading is $(unbacked), expected $1"
  }
  wait_unbacked 0
  k create configmap ghost-runtime --from-literal=stage=canary --from-literal=candidate=r1-candidate \
    --from-literal=promotionRequest=ghost --from-literal=modelUri=runs/r1/model.onnx \
    --from-literal=modelSha256="$(printf 'a%.0s' $(seq 64))" --from-literal=tradingEnabled=true \
    --from-literal=forceFallback=false
  wait_unbacked 1
  grep -h "ghost-runtime" "$LOGS"/operator-*.log | tail -1 | grep -q "does not exist" || fail "the operator did not say why"
  k delete configmap ghost-runtime
  wait_unbacked 0
}

# with_holding DAYS: adds a backtest holding period to a run written by write_run.
with_holding() { cat; echo "  evaluation: {backtest: {holding_days: $1}}"; }

# crd_drop PLURAL PYTHON-PATH-EXPR KEY: replaces the CRD in the cluster by one whose schema node
# lacks KEY (as an older CRD did); the operator is not told. `crd_restore PLURAL` re-applies ours.
crd_drop() {
  kubectl get crd "$1.janus.torghut.io" -o json | python3 -c '
import json, sys
crd = json.load(sys.stdin)
node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
for key in sys.argv[1].split("."):
    node = node["properties"][key]
node.pop(sys.argv[2])
print(json.dumps(crd))' "$2" "$3" | kubectl replace -f -
}
crd_restore() {
  kubectl get crd "$1.janus.torghut.io" -o json | python3 -c '
import json, sys, yaml
crd = json.load(sys.stdin)
crd["spec"] = yaml.safe_load(open(sys.argv[1]))["spec"]
print(json.dumps(crd))' "$ROOT/crds/$1.janus.torghut.io.yaml" | kubectl replace -f -
}

s10_unreadable_objects() {
  local out i
  # The bounds of the Rust types are in the CRD: the value that once stalled every JanusRun is
  # refused by the API server itself.
  if out=$(write_run bad-holding 31 | with_holding 4294967296 | k apply -f - 2>&1); then
    fail "holding_days 4294967296 accepted"
  fi
  echo "refused: $out"
  grep -q "holding_days" <<<"$out" || fail "the refusal does not name holding_days"

  # An object stored under an older CRD without that bound: it still exists, and the operator
  # cannot read it as a JanusRun.
  crd_drop janusruns spec.evaluation.backtest.holding_days maximum
  for i in $(seq 150); do
    write_run bad-holding 31 | with_holding 4294967296 | k apply -f - 2>/dev/null && break
    sleep 0.2
  done
  k get janusrun bad-holding >/dev/null || fail "could not store the malformed run under the old CRD"
  k wait janusrun/bad-holding --for=condition=InvalidSpec --timeout=60s
  local why
  why="$(jp janusrun/bad-holding '{.status.conditions[?(@.type=="InvalidSpec")].message}')"
  echo "bad-holding: $why"
  grep -q "spec.evaluation.backtest.holding_days" <<<"$why" || fail "InvalidSpec does not name the field"
  [ "$(jp janusrun/bad-holding '{.status.conditions[?(@.type=="InvalidSpec")].reason}')" = Unreadable ] || fail "reason"
  eventually 10 sh -c "kubectl -n $NS get events --field-selector involvedObject.name=bad-holding,type=Warning \
    -o custom-columns=REASON:.reason --no-headers | grep -q InvalidSpec" || fail "no InvalidSpec warning event"
  # Everything else reconciles on: a valid run created after it succeeds.
  write_run after-bad 33 | k apply -f -
  k wait janusrun/after-bad --for=condition=Succeeded --timeout=300s

  # An unreadable PromotionRequest backs no trading: its runtime ConfigMap is switched off.
  k create configmap bad-pr-runtime --from-literal=stage=paper --from-literal=candidate=r1-candidate \
    --from-literal=promotionRequest=bad-pr --from-literal=modelUri=runs/r1/models/grpo/model.onnx \
    --from-literal=modelSha256="$(jp januscandidate/r1-candidate '{.spec.model.sha256}')" \
    --from-literal=tradingEnabled=true --from-literal=forceFallback=false
  crd_drop promotionrequests spec.target enum
  # The admission webhook would refuse it too (creation fails closed): what gets through is an
  # older CRD *and* an install without the webhook configurations, the case this guards.
  webhook_configurations | kubectl delete -f - >/dev/null
  for i in $(seq 150); do
    printf 'apiVersion: janus.torghut.io/v1alpha1\nkind: PromotionRequest\nmetadata: {name: bad-pr}\nspec: {candidate: r1-candidate, target: live}\n' |
      k apply -f - 2>/dev/null && break
    sleep 0.2
  done
  webhook_configurations | kubectl apply -f - >/dev/null
  k get promotionrequest bad-pr >/dev/null || fail "could not store the malformed request under the old CRD"
  eventually 30 sh -c "[ \"\$(kubectl -n $NS get configmap bad-pr-runtime -o jsonpath='{.data.tradingEnabled}')\" = false ]" ||
    fail "an unreadable request's runtime ConfigMap still enables trading"
  [ "$(jp configmap/bad-pr-runtime '{.data.forceFallback}')" = true ] || fail "fallback not forced"
  k wait promotionrequest/bad-pr --for=condition=InvalidSpec --timeout=30s
  jp promotionrequest/bad-pr '{.status.conditions[?(@.type=="InvalidSpec")].message}' | grep -q "spec.target" ||
    fail "InvalidSpec does not name spec.target"

  # Back to the current CRDs; both bad objects stay stored as they are.
  crd_restore janusruns
  crd_restore promotionrequests
  for i in $(seq 150); do
    if ! write_run bad-holding-2 31 | with_holding 4294967296 | k apply -f - >/dev/null 2>&1; then break; fi
    k delete janusrun bad-holding-2 --wait=false >/dev/null 2>&1 || true
    sleep 0.2
  done
  ! k get janusrun bad-holding-2 >/dev/null 2>&1 || fail "the restored CRD accepts holding_days 4294967296"

  # An operator restart with the bad objects present: its watches start, and a run created
  # after the restart succeeds.
  local was
  was="$(leader)"
  kill -9 "$(cat "$E2E/pid-$was")"
  start_operator op-d
  wait_leader op-d || fail "op-d never took the lease"
  write_run after-restart 35 | k apply -f -
  k wait janusrun/after-restart --for=condition=Succeeded --timeout=300s
  grep -q "bad-holding" "$LOGS/operator-op-d.log" || fail "op-d never looked at the bad run"
  [ "$(jp janusrun/bad-holding '{.status.conditions[?(@.type=="InvalidSpec")].status}')" = True ] || fail "InvalidSpec lost"
  [ "$(jp configmap/bad-pr-runtime '{.data.tradingEnabled}')" = false ] || fail "trading re-enabled"
  k delete promotionrequest bad-pr
  k delete configmap bad-pr-runtime
  k delete janusrun bad-holding
}

s11_recreated_run() {
  write_run rr 41 | k apply -f -
  k wait janusrun/rr --for=condition=Succeeded --timeout=300s
  local old_uid old_digest new_uid created
  old_uid="$(jp janusrun/rr '{.metadata.uid}')"
  old_digest="$(jp januscandidate/rr-candidate '{.spec.model.sha256}')"
  # Hold the old run's first Job and its candidate, so garbage collection cannot remove them
  # before the new run looks: the race is won by the leftovers every time.
  k patch job rr-label --type merge -p '{"metadata":{"finalizers":["e2e.janus.torghut.io/hold"]}}'
  # (Candidates are the operator's alone: the test's hold goes in with its ServiceAccount.)
  kubectl --kubeconfig "$E2E/operator.kubeconfig" -n "$NS" patch januscandidate rr-candidate --type merge -p '{"metadata":{"finalizers":["e2e.janus.torghut.io/hold"]}}'
  k delete janusrun rr --wait=false
  write_run rr 43 | k apply -f -
  new_uid="$(jp janusrun/rr '{.metadata.uid}')"
  [ "$new_uid" != "$old_uid" ] || fail "not a new object"
  k wait janusrun/rr --for=condition=PreviousChildren --timeout=60s
  local why
  why="$(jp janusrun/rr '{.status.conditions[?(@.type=="PreviousChildren")].message}')"
  echo "waiting: $why"
  grep -q "Job rr-label (owned by uid $old_uid)" <<<"$why" || fail "the condition does not name the old Job"
  [ "$(jp janusrun/rr '{.status.phase}')" = Pending ] || fail "phase $(jp janusrun/rr '{.status.phase}')"
  [ -z "$(jp janusrun/rr '{.status.steps[*].job}')" ] || fail "a step adopted an old Job"
  [ -z "$(jp janusrun/rr '{.status.steps[*].startedAt}')" ] || fail "a step started under the old Jobs"
  eventually 10 sh -c "kubectl -n $NS get events --field-selector involvedObject.name=rr,type=Warning \
    -o custom-columns=REASON:.reason --no-headers | grep -q WaitingForPreviousChildren" || fail "no event"
  # Released: garbage collection removes the old Job and the new run runs its own steps; at the
  # end the old candidate is still in the way, and is not overwritten.
  k patch job rr-label --type json -p '[{"op":"remove","path":"/metadata/finalizers"}]'
  k wait janusrun/rr --for=jsonpath='{.status.steps[4].phase}'=Succeeded --timeout=300s
  k wait janusrun/rr --for=condition=PreviousChildren --timeout=30s
  jp janusrun/rr '{.status.conditions[?(@.type=="PreviousChildren")].message}' | grep -q "JanusCandidate rr-candidate" ||
    fail "the condition does not name the old candidate"
  [ "$(jp januscandidate/rr-candidate '{.spec.model.sha256}')" = "$old_digest" ] || fail "the old candidate was overwritten"
  [ "$(jp janusrun/rr '{.status.phase}')" != Succeeded ] || fail "succeeded without its own candidate"
  kubectl --kubeconfig "$E2E/operator.kubeconfig" -n "$NS" patch januscandidate rr-candidate --type json -p '[{"op":"remove","path":"/metadata/finalizers"}]'
  k wait janusrun/rr --for=condition=Succeeded --timeout=120s
  k wait janusrun/rr --for=condition=PreviousChildren=False --timeout=10s
  # Every Job, every step and the candidate are the new run's.
  created="$(jp janusrun/rr '{.metadata.creationTimestamp}')"
  [ "$(k get jobs -l janus.torghut.io/run=rr-run -o name | wc -l)" = 5 ] || fail "not 5 Jobs"
  for uid in $(k get jobs -l janus.torghut.io/run=rr-run -o jsonpath='{.items[*].metadata.ownerReferences[0].uid}'); do
    [ "$uid" = "$new_uid" ] || fail "a Job of uid $uid"
  done
  k get janusrun rr -o json | python3 -c '
import json, sys
from datetime import datetime
run = json.load(sys.stdin)
t = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
created = t(run["metadata"]["creationTimestamp"])
for s in run["status"]["steps"]:
    assert s.get("startedAt") and t(s["startedAt"]) >= created, ("started before the run existed", s, created)
print("steps started after", created)'
  eventually 30 k get januscandidate rr-candidate
  [ "$(jp januscandidate/rr-candidate '{.metadata.ownerReferences[0].uid}')" = "$new_uid" ] || fail "candidate owner"
  local new_digest disk
  new_digest="$(jp januscandidate/rr-candidate '{.spec.model.sha256}')"
  disk="$(sha256sum "$ART/runs/rr/models/grpo/model.onnx" | cut -d' ' -f1)"
  echo "old model $old_digest, new model $new_digest, on disk $disk"
  [ "$new_digest" = "$disk" ] || fail "the candidate is not the new run's model"
  [ "$new_digest" != "$old_digest" ] || fail "the candidate carries the old model"
}

# ---------- nothing trades without backing; the kill switch latches (issue 15) ----------

promo() { # promo NAME CANDIDATE [TARGET]: a PromotionRequest's YAML
  printf 'apiVersion: janus.torghut.io/v1alpha1\nkind: PromotionRequest\nmetadata: {name: %s}\nspec: {candidate: %s, target: %s}\n' \
    "$1" "$2" "${3:-paper}"
}
phase() { jp "promotionrequest/$1" '{.status.phase}'; }
trading() { jp "configmap/$1-runtime" '{.data.tradingEnabled}'; }
# flip_fast NAME: killSwitch true then false in two PATCHes on one connection (a few ms apart),
# as field manager `oncall-fast`; prints the milliseconds between the two requests' starts.
flip_fast() {
  local token url
  token="$(awk '/token:/ {print $2; exit}' "$KUBECONFIG")"
  url="$E2E_API_SERVER/apis/janus.torghut.io/v1alpha1/namespaces/$NS/promotionrequests/$1?fieldManager=oncall-fast"
  curl -sS --cacert "$E2E_CA" -H "Authorization: Bearer $token" -H 'Content-Type: application/merge-patch+json' \
    -X PATCH "$url" -d '{"spec":{"killSwitch":true}}' -o /dev/null -w '%{time_total} ' \
    --next --cacert "$E2E_CA" -H "Authorization: Bearer $token" -H 'Content-Type: application/merge-patch+json' \
    -X PATCH "$url" -d '{"spec":{"killSwitch":false}}' -o /dev/null -w '%{time_total}\n' |
    awk '{printf "%d\n", $1 * 1000}'
}
# poke NAME: any change makes the operator look at a request again (its periodic look is 60 s).
poke() { k annotate promotionrequest "$1" e2e/poke="$(date +%s%N)" --overwrite >/dev/null; }
# alive PID: the process runs (a zombie that has exited does not count).
alive() { local s; s="$(ps -p "$1" -o stat= 2>/dev/null)" && [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }
decided() { case "$(phase "$1")" in Promoted|Blocked|Halted) return 0 ;; *) return 1 ;; esac; }
last_reason() { jp "promotionrequest/$1" '{.status.history[-1].reason}'; }

s20_double_promotion() {
  write_run r3 31 | k apply -f -
  k wait janusrun/r3 --for=condition=Succeeded --timeout=300s
  k wait januscandidate/r3-candidate --for=condition=EvidenceComplete --timeout=60s
  # Shadow windows for the requests on r3-candidate (here and in scenarios 22 and 23).
  replay_shadow r3-candidate r3 r3-paper-a r3-paper-b r3-flip-2 r3-flip-3 r3-paper-c
  # Two requests for one candidate and stage in one apply: exactly one is promoted.
  { promo r3-paper-a r3-candidate; echo ---; promo r3-paper-b r3-candidate; } | k apply -f -
  eventually 60 decided r3-paper-a
  eventually 60 decided r3-paper-b
  local a b winner loser
  a="$(phase r3-paper-a)"; b="$(phase r3-paper-b)"
  echo "r3-paper-a: $a; r3-paper-b: $b"
  case "$a/$b" in
    Promoted/Blocked) winner=r3-paper-a; loser=r3-paper-b ;;
    Blocked/Promoted) winner=r3-paper-b; loser=r3-paper-a ;;
    *) fail "expected one Promoted and one Blocked, got $a and $b" ;;
  esac
  jp "promotionrequest/$loser" '{.status.blockers}' | grep -q "by request \`$winner\`" ||
    fail "the blocked request does not name the promoted one: $(jp "promotionrequest/$loser" '{.status.blockers}')"
  [ "$(trading "$winner")" = true ] || fail "the winner does not trade"
  if k get configmap "$loser-runtime" >/dev/null 2>&1; then fail "the blocked request has a runtime ConfigMap"; fi
  echo "$winner" >"$E2E/r3-winner"; echo "$loser" >"$E2E/r3-loser"
  # The candidate it serves cannot be deleted from under it.
  jp januscandidate/r3-candidate '{.metadata.finalizers}' | grep -q janus.torghut.io/in-use || fail "no in-use finalizer"
}

s21_swapped_candidate() {
  local p digest
  p="$(cat "$E2E/r3-winner")"
  digest="$(jp januscandidate/r3-candidate '{.spec.model.sha256}')"
  # spec.candidate patched to a candidate that passed no gate: halted, the old model still
  # named in the ConfigMap, trading off; never the other model under this request's name.
  refused immutable-candidate-and-target k patch promotionrequest "$p" --type merge -p '{"spec":{"candidate":"forged"}}'
  webhook_down k patch promotionrequest "$p" --type merge -p '{"spec":{"candidate":"forged"}}'
  k wait "promotionrequest/$p" --for=jsonpath='{.status.phase}'=Halted --timeout=30s
  last_reason "$p" | grep -q '^SpecChanged' || fail "halt reason: $(last_reason "$p")"
  eventually 10 sh -c "[ \"\$(kubectl -n $NS get configmap $p-runtime -o jsonpath='{.data.tradingEnabled}')\" = false ]"
  [ "$(jp "configmap/$p-runtime" '{.data.modelSha256}')" = "$digest" ] || fail "the ConfigMap names another model"
  [ "$(jp "configmap/$p-runtime" '{.data.candidate}')" = r3-candidate ] || fail "the ConfigMap names another candidate"
  # The edited request lends no stage to the candidate it now names.
  promo forged-canary forged canary | k apply -f -
  eventually 30 decided forged-canary
  [ "$(jp promotionrequest/forged-canary '{.status.stage}')" = shadow ] || fail "forged starts at $(jp promotionrequest/forged-canary '{.status.stage}')"
  k wait "promotionrequest/$p" --for=condition=Promoted=False --timeout=5s
  echo "swapped: $(last_reason "$p")"
}

s22_kill_switch_flip() {
  # The switch on for a few milliseconds, then off again (a GitOps self-heal), three times: each
  # request halts, stops trading and records who set it. Clearing the switch is refused while
  # the webhook runs (scenario 3), so the flips run with it down: the case the latch guards.
  local i r t0
  poke "$(cat "$E2E/r3-loser")"   # the claim's holder is halted: the other request may promote now
  k wait "promotionrequest/$(cat "$E2E/r3-loser")" --for=condition=Promoted --timeout=30s
  for i in 1 2 3; do
    if [ "$i" = 1 ]; then r="$(cat "$E2E/r3-loser")"; else
      r="r3-flip-$i"
      promo "$r" r3-candidate | k apply -f -
      k wait "promotionrequest/$r" --for=condition=Promoted --timeout=60s
    fi
    eventually 10 sh -c "[ \"\$(kubectl -n $NS get configmap $r-runtime -o jsonpath='{.data.tradingEnabled}')\" = true ]"
    stop_webhook
    # The webhook is down: the field manager is a name the client typed, recorded as such.
    local actor=unverified:kubectl-patch
    if [ "$i" = 3 ]; then
      # Straight to the API on one connection: on for a few milliseconds.
      echo "flip $i: on for about $(flip_fast "$r") ms (two PATCHes on one connection, webhook down)"
      actor=unverified:oncall-fast
    else
      t0=$(now_ms)
      k patch promotionrequest "$r" --type merge -p '{"spec":{"killSwitch":true}}' >/dev/null
      k patch promotionrequest "$r" --type merge -p '{"spec":{"killSwitch":false}}' >/dev/null
      echo "flip $i: on for about $(($(now_ms) - t0)) ms (two kubectl calls, webhook down)"
    fi
    start_webhook || fail "the webhook did not come back"
    eventually 10 sh -c "[ \"\$(kubectl -n $NS get configmap $r-runtime -o jsonpath='{.data.tradingEnabled}')\" = false ]" ||
      fail "flip $i: still trading"
    k wait "promotionrequest/$r" --for=jsonpath='{.status.phase}'=Halted --timeout=10s
    # Halted by the latched switch, or (when the reconcile saw both writes before the fast path
    # saw the first) as a spec changed twice unobserved: either way halted, never trading.
    if ! k wait "promotionrequest/$r" --for=condition=KillSwitchEngaged --timeout=5s; then
      last_reason "$r" | grep -q '^SpecChanged: the spec changed 2 times' || fail "flip $i: halted for $(last_reason "$r")"
    fi
    [ "$(jp "promotionrequest/$r" '{.spec.killSwitch}')" = false ] || fail "the switch is still on"
    [ "$(jp "promotionrequest/$r" '{.status.history[-1].actor}')" = "$actor" ] ||
      fail "flip $i: actor $(jp "promotionrequest/$r" '{.status.history[-1].actor}')"
  done
}

s23_deleted_backing() {
  promo r3-paper-c r3-candidate | k apply -f -
  k wait promotionrequest/r3-paper-c --for=condition=Promoted --timeout=60s
  eventually 10 sh -c "[ \"\$(kubectl -n $NS get configmap r3-paper-c-runtime -o jsonpath='{.data.tradingEnabled}')\" = true ]"
  # The run behind it is deleted; garbage collection would take its candidate.
  k delete janusrun r3 --wait=false
  k wait promotionrequest/r3-paper-c --for=jsonpath='{.status.phase}'=Halted --timeout=60s
  last_reason r3-paper-c | grep -q '^BackingLost' || fail "halt reason: $(last_reason r3-paper-c)"
  eventually 10 sh -c "[ \"\$(kubectl -n $NS get configmap r3-paper-c-runtime -o jsonpath='{.data.tradingEnabled}')\" = false ]"
  # The candidate is still there, marked for deletion, held by the requests that served it.
  eventually 30 sh -c "[ -n \"\$(kubectl -n $NS get januscandidate r3-candidate -o jsonpath='{.metadata.deletionTimestamp}')\" ]" ||
    fail "the candidate is not being deleted"
  jp januscandidate/r3-candidate '{.metadata.finalizers}' | grep -q janus.torghut.io/in-use || fail "the candidate lost its finalizer"
  echo "halted: $(last_reason r3-paper-c)"
  # The kill switch still acts and is recorded.
  k patch promotionrequest r3-paper-c --type merge -p '{"spec":{"killSwitch":true}}' >/dev/null
  k wait promotionrequest/r3-paper-c --for=condition=KillSwitchEngaged --timeout=10s
  # Once no request needs it, the candidate goes.
  k delete promotionrequest r3-paper-a r3-paper-b r3-flip-2 r3-flip-3 r3-paper-c
  eventually 60 sh -c "! kubectl -n $NS get januscandidate r3-candidate" || fail "the candidate was never released"
}

s24_long_name() {
  local name
  name="r1-$(printf 'x%.0s' $(seq 57))"   # 60 characters: its runtime ConfigMap would not fit 63
  promo "$name" r1-candidate | k apply -f -
  eventually 30 decided "$name"
  [ "$(phase "$name")" = Blocked ] || fail "a 60-character request is $(phase "$name")"
  jp "promotionrequest/$name" '{.status.blockers}' | grep -q "at most 55 are served" || fail "no reason"
  if k get configmaps -o name | grep -q "$name"; then fail "a runtime ConfigMap was written"; fi
  k delete promotionrequest "$name"
}

s25_two_leaders() {
  # A leader frozen past its lease (SIGSTOP: a stalled node, a long GC pause) must not reconcile
  # beside the replica that takes over: it steps down on waking, and the new leader's runtime
  # ConfigMaps carry its own, newer epoch.
  local old new
  old="$(leader)"
  new=op-f
  start_operator "$new"
  eventually 20 curl -fsS "http://127.0.0.1:$(cat "$E2E/port-$new")/readyz"
  kill -STOP "$(cat "$E2E/pid-$old")"
  wait_leader "$new" || { kill -CONT "$(cat "$E2E/pid-$old")"; fail "$new never took over"; }
  kill -CONT "$(cat "$E2E/pid-$old")"
  local pid t
  pid="$(cat "$E2E/pid-$old")"
  for t in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then fail "the old leader $old kept running"; fi
  grep -q "stepping down before it can expire\|lost the leader lease" "$LOGS/operator-$old.log" || fail "the old leader did not say why it stopped"
  local epoch
  epoch="$(k get lease janus-operator -o jsonpath='{.spec.leaseTransitions}')"
  poke r1-canary
  eventually 30 sh -c "[ \"\$(kubectl -n $NS get configmap r1-canary-runtime -o jsonpath='{.data.leaseEpoch}')\" = $epoch ]" ||
    fail "r1-canary-runtime carries epoch $(jp configmap/r1-canary-runtime '{.data.leaseEpoch}'), not $epoch"
  echo "old leader $old exited; $new leads at epoch $epoch"
}

s26_scale_kill_switch() {
  # Many requests and a kill switch on a hundred of them at once: every runtime ConfigMap
  # stops trading through the fast path, ahead of the reconcile backlog.
  local n=${E2E_SCALE:-150} kills=100 i t0 t1
  for i in $(seq -w 1 "$n"); do
    promo "scale-$i" "scale-candidate-$i"; echo ---
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: scale-%s-runtime, labels: {e2e: scale}}\ndata: {stage: paper, candidate: scale-candidate-%s, promotionRequest: scale-%s, modelUri: m.onnx, modelSha256: %s, tradingEnabled: "true", forceFallback: "false"}\n---\n' \
      "$i" "$i" "$i" "$(printf 'a%.0s' $(seq 64))"
  done | k apply -f - >/dev/null
  eventually 120 decided "scale-$(printf '%03d' "$n")"
  t0=$(now_ms)
  seq -w 1 "$kills" | xargs -P 16 -I{} kubectl -n "$NS" patch promotionrequest "scale-{}" --type merge -p '{"spec":{"killSwitch":true}}' >/dev/null
  t1=$(now_ms)
  local left
  for _ in $(seq 600); do
    left=$(k get configmaps -l e2e=scale -o jsonpath='{range .items[*]}{.data.tradingEnabled}{"\n"}{end}' | head -n "$kills" | grep -c true || true)
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  [ "$left" = 0 ] || fail "$left of $kills runtime ConfigMaps still trade"
  echo "$kills kill switches among $n requests: patched in $((t1 - t0)) ms, every ConfigMap off $(($(now_ms) - t0)) ms after the first patch" | tee "$E2E/scale-kill-latency"
  # The other requests' ConfigMaps are untouched.
  [ "$(jp "configmap/scale-$n-runtime" '{.data.tradingEnabled}')" = true ] || fail "an unswitched request was halted"
  k delete promotionrequest $(seq -f 'scale-%03g' 1 "$n") --wait=false >/dev/null
  k delete configmaps -l e2e=scale --wait=false >/dev/null
}

# serve_for REQUEST RELEASE: a decision service following REQUEST with the chart's RBAC for it
# (release RELEASE), with --max-config-age 2 s; prints its port.
serve_for() {
  "$HELM" template "$2" "$ROOT/charts/janus-operator" --namespace "$NS" \
    --set "decisionService.enabled=true,decisionService.promotionRequest=$1,artifactsClaim=artifacts" \
    --show-only templates/decision-service-rbac.yaml | kubectl apply -n "$NS" -f - >/dev/null
  sa_kubeconfig "$2-janus-operator-decision" "$E2E/$2.kubeconfig" || fail "no token for $2"
  local port
  port=$(free_port)
  KUBECONFIG="$E2E/$2.kubeconfig" janus serve --promotion-request "$NS/$1" --max-config-age 2 \
    --artifacts-root "$ART" --listen "127.0.0.1:$port" --log-format text >"$LOGS/serve-$2.log" 2>&1 &
  echo $! >>"$PIDFILE"
  echo $! >"$E2E/pid-serve-$2"
  eventually 30 sh -c "curl -fsS http://127.0.0.1:$port/v1/runtime | grep -q '\"model\":\"loaded\"'" || fail "the service never loaded its model"
  echo "$port"
}

s27_operator_gone() {
  # r1's paper request was rolled back (scenario 8), so the candidate's paper stage is free.
  replay_shadow r1-candidate r1 r1-paper-2
  promo r1-paper-2 r1-candidate | k apply -f -
  k wait promotionrequest/r1-paper-2 --for=condition=Promoted --timeout=60s
  local port
  port="$(serve_for r1-paper-2 s27)"
  # A new event id each try: a repeated id gets its first decision again (a duplicate).
  eventually 10 sh -c "curl -fsS -X POST http://127.0.0.1:$port/v1/decide -d '{\"event\": {\"event_id\": \"x'\$(date +%s%N)'\", \"timestamp\": \"'\$(date -u +%Y-%m-%dT%H:%M:%SZ)'\", \"symbol\": \"600000.SH\", \"event_type\": \"dividend\", \"title\": \"t\"}}' | grep -q '\"source\":\"model\"'" ||
    fail "the service does not trade before the switch: $(decide "$port")"
  # No operator at all (uninstalled, or every replica down).
  local p
  for p in "$E2E"/pid-op-*; do kill -9 "$(cat "$p")" 2>/dev/null || true; done
  sleep 1
  # The switch on and off again while nobody reconciles (and no webhook refuses the flip
  # back): the service's own watch latches it.
  stop_webhook
  local t0 t1
  t0=$(now_ms)
  k patch promotionrequest r1-paper-2 --type merge -p '{"spec":{"killSwitch":true}}' >/dev/null
  k patch promotionrequest r1-paper-2 --type merge -p '{"spec":{"killSwitch":false}}' >/dev/null
  start_webhook || fail "the webhook did not come back"
  until [ "$(decide "$port")" = "halted kill_switch" ]; do
    [ $(($(now_ms) - t0)) -lt 10000 ] || fail "the service still trades 10 s after the switch with no operator: $(decide "$port")"
    sleep 0.02
  done
  t1=$(now_ms)
  echo "$((t1 - t0)) ms from the first kubectl patch (on, then off) to the first halted decision, no operator running" | tee "$E2E/operator-gone-latency"
  # Still halted a while later: the latch holds.
  sleep 2
  [ "$(decide "$port")" = "halted kill_switch" ] || fail "the latch did not hold: $(decide "$port")"
  # A decision service (re)started now, still with no operator: the switch is off again, but the
  # request's spec changed twice since the operator last decided on it, so it does not trade.
  local again
  again="$(serve_for r1-paper-2 s27b)"
  [ "$(decide "$again" | cut -d' ' -f1)" = halted ] || fail "a restarted service trades after an unseen flip: $(decide "$again")"
  echo "restarted service: $(decide "$again")"
  # The operator comes back for the scenarios after this one.
  start_operator op-e
  wait_leader op-e || fail "op-e never led"
}

s28_api_server_down() {
  # Last: the API server stops. A service that cannot confirm its configuration for longer than
  # --max-config-age (2 s here) stops trading and says why.
  local port t0 t1
  port="$(serve_for r1-paper-2 s28)"
  # (r1-paper-2 is latched off in the first service; this one started after the switch was
  # cleared, so it serves the promoted request normally.)
  eventually 10 sh -c "curl -fsS http://127.0.0.1:$port/readyz" || fail "not ready"
  t0=$(now_ms)
  kill -STOP "$(cat "$E2E/cluster/apiserver.pid")"
  until [ "$(decide "$port")" = "halted config_stale" ]; do
    [ $(($(now_ms) - t0)) -lt 15000 ] || { kill -CONT "$(cat "$E2E/cluster/apiserver.pid")"; fail "still deciding 15 s after the API server stopped: $(decide "$port")"; }
    sleep 0.05
  done
  t1=$(now_ms)
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")"
  kill -CONT "$(cat "$E2E/cluster/apiserver.pid")"
  echo "$((t1 - t0)) ms from the API server stopping to the first config_stale decision (max-config-age 2 s); /readyz $code" | tee "$E2E/api-down-latency"
  [ "$code" = 503 ] || fail "/readyz answered $code while the configuration was stale"
  # Back: a fresh read resumes.
  eventually 15 sh -c "curl -fsS http://127.0.0.1:$port/readyz" || fail "never ready again after the API server came back"
}

s29_soak() {
  # A seeded, bounded soak: random interleavings of kill-switch flips (some back off within a few
  # milliseconds), kill switches, candidate edits, a run deleted and re-created, operator SIGKILLs
  # and restarts, new requests. Afterwards every runtime ConfigMap that trades must belong to a
  # promoted request whose switch was never set, whose spec was never edited, and whose candidate
  # exists, verified, with the model the ConfigMap names; at most one per candidate.
  local seed=${E2E_SOAK_SEED:-$(date +%s)} ops=${E2E_SOAK_OPS:-200}
  echo "soak seed $seed, $ops operations (E2E_SOAK_SEED=$seed reproduces the sequence)"
  RANDOM=$seed
  write_run r5 51 | k apply -f -
  k wait janusrun/r5 --for=condition=Succeeded --timeout=300s
  k wait januscandidate/r5-candidate --for=condition=EvidenceComplete --timeout=60s
  replay_shadow r1-candidate r1 $(seq -f 'soak-%g' 1 30)
  replay_shadow r5-candidate r5 $(seq -f 'soak-%g' 1 30)
  local cands=(r1-candidate r5-candidate) reqs=() killed=() edited=() i op r n seed2=60
  local leader_id
  # The requests first (creating needs the webhook), then the webhook down for the rest: the
  # flips back and the candidate edits it would refuse are the very gap these guard.
  for n in $(seq 1 30); do
    promo "soak-$n" "${cands[$((RANDOM % 2))]}"; echo ---
  done | k apply -f - >/dev/null
  for n in $(seq 1 30); do reqs+=("soak-$n"); done
  stop_webhook
  for i in $(seq 1 "$ops"); do
    op=$((RANDOM % 100))
    r="${reqs[$((RANDOM % ${#reqs[@]}))]}"
    if [ "$op" -lt 20 ]; then
      sleep "0.$((RANDOM % 3))"
    elif [ "$op" -lt 30 ]; then        # flip: on, then off a few milliseconds later
      flip_fast "$r" >/dev/null
      killed+=("$r")
    elif [ "$op" -lt 45 ]; then      # flip: on, then off (two kubectl calls)
      k patch promotionrequest "$r" --type merge -p '{"spec":{"killSwitch":true}}' >/dev/null
      k patch promotionrequest "$r" --type merge -p '{"spec":{"killSwitch":false}}' >/dev/null
      killed+=("$r")
    elif [ "$op" -lt 55 ]; then      # the switch, left on
      k patch promotionrequest "$r" --type merge -p '{"spec":{"killSwitch":true}}' >/dev/null
      killed+=("$r")
    elif [ "$op" -lt 65 ]; then      # the candidate edited
      local other
      other="$(jp "promotionrequest/$r" '{.spec.candidate}')"
      [ "$other" = r1-candidate ] && other=r5-candidate || other=r1-candidate
      k patch promotionrequest "$r" --type merge -p "{\"spec\":{\"candidate\":\"$other\"}}" >/dev/null || true
      edited+=("$r")
    elif [ "$op" -lt 68 ]; then      # the run behind r5-candidate deleted and re-created at once
      k delete janusrun r5 --wait=false >/dev/null 2>&1 || true
      seed2=$((seed2 + 2))
      write_run r5 "$seed2" | k apply -f - >/dev/null 2>&1 || true
      echo "op $i: r5 deleted and re-created (seed $seed2)"
    elif [ "$op" -lt 73 ]; then      # the leader SIGKILLed, a new replica started
      leader_id="$(leader)"
      if [ -n "$leader_id" ] && [ -f "$E2E/pid-$leader_id" ]; then
        kill -9 "$(cat "$E2E/pid-$leader_id")" 2>/dev/null || true
        echo "op $i: leader $leader_id killed"
      fi
      start_operator "soak-op-$i"
    else
      sleep "0.0$((RANDOM % 10))"
    fi
  done
  start_webhook || fail "the webhook did not come back"
  # Settle: a leader, a look at every request, time for the Job controller and GC.
  eventually 30 sh -c "[ -n \"\$(kubectl -n $NS get lease janus-operator -o jsonpath='{.spec.holderIdentity}')\" ]"
  sleep 8
  for r in "${reqs[@]}"; do poke "$r" 2>/dev/null || true; done
  sleep 8
  local violations=0 cm trading phase cand model csha evidence gone line
  local -A traders=()
  for r in "${reqs[@]}"; do
    trading="$(jp "configmap/$r-runtime" '{.data.tradingEnabled}' 2>/dev/null || true)"
    [ "$trading" = true ] || continue
    phase="$(phase "$r")"
    cand="$(jp "configmap/$r-runtime" '{.data.candidate}')"
    model="$(jp "configmap/$r-runtime" '{.data.modelSha256}')"
    csha="$(jp "januscandidate/$cand" '{.spec.model.sha256}' 2>/dev/null || true)"
    gone="$(jp "januscandidate/$cand" '{.metadata.deletionTimestamp}' 2>/dev/null || echo missing)"
    evidence="$(jp "januscandidate/$cand" '{.status.conditions[?(@.type=="EvidenceComplete")].status}' 2>/dev/null || true)"
    line="$r trades ($cand, $model):"
    [ "$phase" = Promoted ] || { echo "VIOLATION $line phase $phase"; violations=$((violations + 1)); }
    printf '%s\n' "${killed[@]}" | grep -qx "$r" && { echo "VIOLATION $line its kill switch was set"; violations=$((violations + 1)); }
    printf '%s\n' "${edited[@]}" | grep -qx "$r" && { echo "VIOLATION $line its spec was edited"; violations=$((violations + 1)); }
    [ -z "$gone" ] || { echo "VIOLATION $line candidate missing or being deleted"; violations=$((violations + 1)); }
    [ "$evidence" = True ] || { echo "VIOLATION $line candidate evidence $evidence"; violations=$((violations + 1)); }
    [ "$csha" = "$model" ] || { echo "VIOLATION $line candidate model $csha"; violations=$((violations + 1)); }
    [ -z "${traders[$cand]:-}" ] || { echo "VIOLATION $line ${traders[$cand]} trades the same candidate"; violations=$((violations + 1)); }
    traders[$cand]="$r"
  done
  local trading_now="none" c
  for c in "${!traders[@]}"; do trading_now="${trading_now/#none/} ${traders[$c]} ($c)"; done
  echo "soak: ${#reqs[@]} requests, ${#killed[@]} kill switches, ${#edited[@]} edits; trading now:$trading_now; $violations violations; seed $seed" | tee "$E2E/soak-result"
  [ "$violations" = 0 ] || fail "$violations violations (seed $seed)"
}

# ---------- identities, least privilege, the audit trail (issue 16) ----------

canary_request() { # canary_request NAME [ANNOTATIONS-YAML]
  cat <<YAML
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata:
  name: $1
  annotations: {${2:-}}
spec:
  candidate: r1-candidate
  target: canary
  canary: {symbols: ["600000.SH"], maxOrderNotional: 100000, maxGrossNotional: 1000000, maxNetNotional: 250000}
YAML
}
blockers() { jp "promotionrequest/$1" '{.status.blockers}'; }

s30_forged_approval() {
  # Issue 16, as a researcher tried it: somebody else's name as approver, a made-up token, both
  # drills an hour ago, the runbook "validated".
  canary_request forged-approval "janus.torghut.io/approved-by: alice, janus.torghut.io/approval-token: i-made-this-up, \
janus.torghut.io/rollback-drill-at: \"$(rfc3339_ago 1)\", janus.torghut.io/kill-switch-drill-at: \"$(rfc3339_ago 1)\", \
janus.torghut.io/runbook-validated: \"true\"" >"$E2E/forged-approval.yaml"
  refused no-unsigned-approvals as rita apply -f "$E2E/forged-approval.yaml"
  if k get promotionrequest forged-approval 2>/dev/null; then fail "the forged request exists"; fi
  # A stamped record typed by hand, or a plain annotation added later, is refused as well.
  canary_request forged-later | as bob apply -f -
  refused stamps-are-webhook-only as bob annotate promotionrequest forged-later \
    'janus.torghut.io/approval={"kind":"approval","by":"alice","sig":"00"}'
  refused no-unsigned-approvals as bob annotate promotionrequest forged-later janus.torghut.io/approved-by=alice
  # Asking at creation is refused too: records go on an existing request.
  canary_request ask-at-create "janus.torghut.io/approve: \"true\"" >"$E2E/ask-at-create.yaml"
  refused records-need-an-existing-request as bob apply -f "$E2E/ask-at-create.yaml"
  k delete promotionrequest forged-later
}

# sign_record NAME KIND BY AT EXPIRES: a record signed with the webhook's key (what an insider
# holding the key could make), printed as the annotation's value. An approval binds the
# request's spec as it is now (docs/gates.md: SHA-256 of its canonical JSON without killSwitch;
# the integers kubectl prints are already canonical).
sign_record() {
  python3 - "$E2E/signing.key" "$NS" "$1" "$(jp "promotionrequest/$1" '{.metadata.uid}')" "$2" "$3" "$4" "$5" \
    "$(k get promotionrequest "$1" -o json)" "$(jp januscandidate/r1-candidate '{.spec.model.sha256}')" <<'PY'
import hashlib, hmac, json, sys
key, ns, name, uid, kind, by, at, expires, obj, model = sys.argv[1:]
rec = {"kind": kind, "by": by, "groups": ["janus-approvers"], "namespace": ns, "request": name,
       "requestUid": uid, "candidate": "r1-candidate", "target": "canary", "at": at,
       "recordedAt": at, "expiresAt": expires}
canonical = lambda r: json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
if kind == "approval":
    spec = json.loads(obj)["spec"]
    spec.pop("killSwitch", None)
    spec.setdefault("canary", None)
    rec["approvedSpecSha256"] = hashlib.sha256(canonical(spec).encode()).hexdigest()
    rec["modelSha256"] = model  # the webhook binds every approval to the candidate's model
# The key file's first line is the current key (docs/gitops.md: rotation).
rec["sig"] = hmac.new(open(key).read().split()[0].encode(), canonical(rec).encode(), hashlib.sha256).hexdigest()
print(canonical(rec))
PY
}

s31_bad_approvals() {
  canary_request r1-canary-bob | as bob apply -f -
  eventually 30 decided r1-canary-bob
  # Self-approval, and an approval by someone outside the approver group.
  refused separation-of-duties as bob annotate promotionrequest r1-canary-bob janus.torghut.io/approve=true
  refused approver-group as carol annotate promotionrequest r1-canary-bob janus.torghut.io/approve=true
  # Alice's approval of r1-canary copied here: refused, and with the webhook down (updates fail
  # open) it gets in but the operator ignores it: stamped for another request.
  local copied
  copied="$(cat "$E2E/alice-approval")"
  [ -n "$copied" ] || fail "no approval of r1-canary to copy"
  refused stamps-are-webhook-only as bob annotate --overwrite promotionrequest r1-canary-bob "janus.torghut.io/approval=$copied"
  webhook_down as bob annotate --overwrite promotionrequest r1-canary-bob "janus.torghut.io/approval=$copied"
  eventually 30 sh -c "kubectl -n $NS get promotionrequest r1-canary-bob -o jsonpath='{.status.blockers}' | grep -q 'copied'" ||
    fail "the copied approval is not named as ignored: $(blockers r1-canary-bob)"
  [ "$(jp promotionrequest/r1-canary-bob '{.status.conditions[?(@.type=="Approved")].status}')" = False ] || fail "approved by a copy"
  echo "copied: $(blockers r1-canary-bob)"
  # An approval signed with the right key for this request, but expired.
  local expired
  expired="$(sign_record r1-canary-bob approval alice "$(rfc3339_ago 30)" "$(rfc3339_ago 6)")"
  webhook_down as bob annotate --overwrite promotionrequest r1-canary-bob "janus.torghut.io/approval=$expired"
  eventually 30 sh -c "kubectl -n $NS get promotionrequest r1-canary-bob -o jsonpath='{.status.blockers}' | grep -q 'expired'" ||
    fail "the expired approval is not named as ignored: $(blockers r1-canary-bob)"
  [ "$(jp promotionrequest/r1-canary-bob '{.status.conditions[?(@.type=="Approved")].status}')" = False ] || fail "approved by an expired record"
  echo "expired: $(blockers r1-canary-bob)"
  # The same record, valid in time: believed (the key, not the path, makes a record).
  local fresh
  fresh="$(sign_record r1-canary-bob approval alice "$(rfc3339_ago 1)" "$(date -u -d '+6 hours' +%Y-%m-%dT%H:%M:%SZ)")"
  webhook_down as bob annotate --overwrite promotionrequest r1-canary-bob "janus.torghut.io/approval=$fresh"
  k wait promotionrequest/r1-canary-bob --for=condition=Approved --timeout=30s
  # The approval covers the limits it approved: on-call widening spec.canary is admitted, the
  # webhook removes the approval (warning naming the rule) ...
  local out
  out="$(as carol patch promotionrequest r1-canary-bob --type merge \
    -p '{"spec":{"canary":{"symbols":["600000.SH","000001.SZ"],"maxGrossNotional":2000000}}}' 2>&1)" ||
    fail "widening the canary was refused: $out"
  grep -q approval-covers-the-spec <<<"$out" || fail "no warning naming approval-covers-the-spec: $out"
  [ -z "$(jp promotionrequest/r1-canary-bob '{.metadata.annotations.janus\.torghut\.io/approval}')" ] ||
    fail "the approval of the narrower limits is still on the request"
  k wait promotionrequest/r1-canary-bob --for=condition=Approved=False --timeout=30s
  # ... and with the webhook down the old approval put back is not believed: it approved other limits.
  webhook_down as bob annotate --overwrite promotionrequest r1-canary-bob "janus.torghut.io/approval=$fresh"
  eventually 30 sh -c "kubectl -n $NS get promotionrequest r1-canary-bob -o jsonpath='{.status.blockers}' | grep -q 'does not cover this spec'" ||
    fail "the approval of other limits is not named as ignored: $(blockers r1-canary-bob)"
  [ "$(jp promotionrequest/r1-canary-bob '{.status.conditions[?(@.type=="Approved")].status}')" = False ] || fail "approved for other limits"
  echo "other limits: $(blockers r1-canary-bob)"
}

s32_kill_switch_webhook_down() {
  # (Scenario 6's request may hold r1-candidate's paper stage by now.)
  k delete promotionrequest after-handover --ignore-not-found
  replay_shadow r1-candidate r1 r1-paper-3
  promo r1-paper-3 r1-candidate | k apply -f -
  k wait promotionrequest/r1-paper-3 --for=condition=Promoted --timeout=60s
  eventually 10 sh -c "[ \"\$(kubectl -n $NS get configmap r1-paper-3-runtime -o jsonpath='{.data.tradingEnabled}')\" = true ]"
  stop_webhook
  # Creating a request fails closed without the webhook ...
  if promo no-webhook r1-candidate | k apply -f - 2>/dev/null; then start_webhook; fail "a request was created without the webhook"; fi
  # ... but on-call's kill switch gets through, and trading stops.
  as carol patch promotionrequest r1-paper-3 --type merge -p '{"spec":{"killSwitch":true}}' || { start_webhook; fail "kill switch refused with the webhook down"; }
  local ok=0
  for _ in $(seq 100); do [ "$(trading r1-paper-3)" = false ] && { ok=1; break; }; sleep 0.1; done
  k wait promotionrequest/r1-paper-3 --for=jsonpath='{.status.phase}'=Halted --timeout=10s || ok=0
  start_webhook || fail "the webhook did not come back"
  [ "$ok" = 1 ] || fail "trading not stopped with the webhook down"
  echo "halted with the webhook down: $(last_reason r1-paper-3) by $(jp promotionrequest/r1-paper-3 '{.status.history[-1].actor}')"
}

# The table of docs/resources.md: expected answer, identity, verb, resource, namespace.
CAN_I_TABLE='
yes operator create jobs janus
yes operator patch configmaps janus
yes operator create configmaps janus
yes operator get configmaps janus
yes operator get configmaps/janus-gate-policy janus-policy
no  operator patch configmaps/janus-gate-policy janus-policy
no  operator update configmaps/janus-gate-policy janus-policy
no  operator create configmaps janus-policy
no  operator get secrets janus
no  operator patch promotionrequests janus
yes operator patch promotionrequests/status janus
yes operator patch januscandidates janus
yes operator create januscandidates janus
no  operator delete januscandidates janus
no  operator create pods janus
no  operator create rolebindings janus
no  step get configmaps janus
no  step list pods janus
no  step create jobs janus
no  step get secrets janus
yes decision get configmaps/r1-canary-runtime janus
no  decision get configmaps/r1-paper-runtime janus
no  decision patch configmaps/r1-canary-runtime janus
yes researcher create janusruns janus
yes researcher create promotionrequests janus
no  researcher patch promotionrequests janus
no  researcher create januscandidates janus
no  researcher patch promotionrequests/status janus
no  researcher patch configmaps janus
yes approver patch promotionrequests janus
no  approver create promotionrequests janus
no  approver patch promotionrequests/status janus
no  approver patch januscandidates janus
no  approver get secrets janus
yes oncall patch promotionrequests janus
yes oncall get configmaps janus
no  oncall patch configmaps janus
no  oncall patch promotionrequests/status janus
no  oncall create januscandidates janus
no  oncall get configmaps/janus-gate-policy janus-policy
'

s33_can_i() {
  local expect who verb res ns as got sub bad=0
  while read -r expect who verb res ns; do
    [ -n "$expect" ] || continue
    case "$who" in
      operator) as=(--as "$OPERATOR_SA") ;;
      step) as=(--as "system:serviceaccount:$NS:$STEP_SA") ;;
      decision) as=(--as "system:serviceaccount:$NS:janus-janus-operator-decision") ;;
      researcher) as=(--as rita --as-group janus-researchers) ;;
      approver) as=(--as alice --as-group janus-approvers) ;;
      oncall) as=(--as carol --as-group janus-oncall) ;;
    esac
    sub=()
    case "$res" in */status) sub=(--subresource=status); res="${res%/status}" ;; esac
    got="$(kubectl auth can-i "$verb" "$res" "${sub[@]}" -n "$ns" "${as[@]}" 2>/dev/null || true)"
    printf '%-4s %-10s %-7s %-40s %s\n' "$got" "$who" "$verb" "$res${sub:+/status}" "$ns"
    [ "$got" = "$expect" ] || { echo "  ^ expected $expect"; bad=1; }
  done <<<"$CAN_I_TABLE"
  [ "$bad" = 0 ] || fail "the can-i table does not hold"
  # With its own token, the operator cannot loosen the policy it enforces.
  if kubectl --kubeconfig "$E2E/operator.kubeconfig" -n "$POLICY_NS" patch configmap janus-gate-policy \
      --type merge -p '{"data":{"loosened":"yes"}}' 2>&1; then fail "the operator changed the policy"; fi
}

s34_audit_trail() {
  local log="$ART/audit/$NS.jsonl"
  janus audit verify "$log" || fail "the audit trail does not verify"
  grep -q '"event":"approval"' "$log" || fail "no approval in the trail"
  grep '"event":"approval"' "$log" | grep -q '"actor":"alice"' || fail "the approval does not name alice"
  # Recorded by the operator from the stored request, once per record however often it reconciled.
  [ "$(grep '"event":"approval"' "$log" | grep '"request":"r1-canary"' | grep -c '"recordSig"')" = 1 ] ||
    fail "alice's approval of r1-canary is not on record exactly once: $(grep '"event":"approval"' "$log" | grep -c '"request":"r1-canary"')"
  grep -q '"event":"refused"' "$log" || fail "no refusal in the trail"
  grep '"request":"r1-canary"' "$log" | grep '"event":"transition"' | grep -q '"to":"canary"' || fail "no canary promotion in the trail"
  # Deleting a request keeps its record.
  local before after
  before="$(grep -c '"request":"r1-canary-bob"' "$log")"
  [ "$before" -gt 0 ] || fail "r1-canary-bob has no record"
  k delete promotionrequest r1-canary-bob
  after="$(grep -c '"request":"r1-canary-bob"' "$log")"
  [ "$after" -ge "$before" ] || fail "deleting the request removed its record ($before → $after lines)"
  janus audit verify "$log"
  # An edited copy fails, naming the line.
  local copy="$E2E/audit-edited.jsonl" line out
  line="$(grep -n '"actor":"alice"' "$log" | head -1 | cut -d: -f1)"
  sed "${line}s/\"actor\":\"alice\"/\"actor\":\"mallory\"/" "$log" >"$copy"
  if out="$(janus audit verify "$copy" 2>&1)"; then fail "an edited trail verified"; fi
  echo "$out"
  grep -q "$copy:$line:" <<<"$out" || fail "the failure does not name line $line"
}

# ---------- adversarial checks of issue 16 (adv16b) ----------

s35_rollback_actor() {
  # Needs scenario 2: r1-canary created by rita, approved by alice, promoted to canary.
  [ "$(phase r1-canary)" = Promoted ] || fail "r1-canary is not promoted (run scenario 2 first)"
  # On-call (carol, who neither created nor approved it) rolls it back.
  as carol annotate promotionrequest r1-canary janus.torghut.io/rollback-reason="adv: carol rolls back"
  k wait promotionrequest/r1-canary --for=jsonpath='{.status.phase}'=RolledBack --timeout=30s
  local actor
  actor="$(jp promotionrequest/r1-canary '{.status.history[-1].actor}')"
  echo "rollback recorded as by: $actor"
  grep '"request":"r1-canary"' "$ART/audit/$NS.jsonl" | grep '"phase":"RolledBack"' | tail -1
  # The history and the audit trail must name who asked for the rollback, not the approver.
  [ "$actor" = carol ] || fail "carol's rollback is attributed to '$actor'"
}

s36_kill_switch_typed_actor() {
  # Needs scenario 2: r1-paper promoted to paper.
  [ "$(phase r1-paper)" = Promoted ] || fail "r1-paper is not promoted (run scenario 2 first)"
  # With the webhook down, carol sets the kill switch under a field manager she typed: "alice".
  webhook_down as carol patch promotionrequest r1-paper --field-manager=alice --type merge -p '{"spec":{"killSwitch":true}}'
  k wait promotionrequest/r1-paper --for=jsonpath='{.status.phase}'=Halted --timeout=30s
  local actor
  actor="$(jp promotionrequest/r1-paper '{.status.history[-1].actor}')"
  echo "kill switch recorded as set by: $actor"
  grep '"request":"r1-paper"' "$ART/audit/$NS.jsonl" | grep '"phase":"Halted"' | tail -1
  # A field manager is a name the client typed: never recorded as an authenticated actor.
  [ "$actor" != alice ] || fail "the kill switch is attributed to alice, a name carol typed (--field-manager)"
}

s37_withdrawn_approval_resurrected() {
  # An approval withdrawn by its approver, put back with the webhook down by on-call (who may
  # not approve): an update that slipped past a down webhook must never approve anything.
  canary_request withdrawn | as rita apply -f -
  eventually 30 decided withdrawn
  as alice annotate promotionrequest withdrawn janus.torghut.io/approve=true
  k wait promotionrequest/withdrawn --for=condition=Approved --timeout=30s
  local saved
  saved="$(jp promotionrequest/withdrawn '{.metadata.annotations.janus\.torghut\.io/approval}')"
  as alice annotate promotionrequest withdrawn janus.torghut.io/approval-
  k wait promotionrequest/withdrawn --for=condition=Approved=False --timeout=30s
  webhook_down as carol annotate --overwrite promotionrequest withdrawn "janus.torghut.io/approval=$saved"
  poke withdrawn
  sleep 5
  local approved
  approved="$(jp promotionrequest/withdrawn '{.status.conditions[?(@.type=="Approved")].status}')"
  echo "after carol put the withdrawn approval back: Approved=$approved; blockers: $(blockers withdrawn)"
  [ "$approved" = False ] || fail "a withdrawn approval, put back by carol with the webhook down, approves the request again"
}

s38_server_side_apply_resync() {
  # GitOps with server-side apply (Argo CD `ServerSideApply=true`): the same manifest applied
  # again, before and after an approval, must go through and keep the webhook's stamps.
  canary_request ssa-sync >"$E2E/ssa-sync.yaml"
  k apply --server-side --field-manager=argocd-e2e -f "$E2E/ssa-sync.yaml"
  jp promotionrequest/ssa-sync '{.metadata.annotations.janus\.torghut\.io/created-by}' | grep -q '"by":' || fail "creator not stamped"
  k apply --server-side --field-manager=argocd-e2e -f "$E2E/ssa-sync.yaml" || fail "an unchanged re-sync is refused"
  jp promotionrequest/ssa-sync '{.metadata.annotations.janus\.torghut\.io/created-by}' | grep -q '"by":' || fail "the re-sync removed the creator"
  as alice annotate promotionrequest ssa-sync janus.torghut.io/approve=true
  k apply --server-side --field-manager=argocd-e2e -f "$E2E/ssa-sync.yaml" || fail "a re-sync after the approval is refused"
  jp promotionrequest/ssa-sync '{.metadata.annotations.janus\.torghut\.io/approval}' | grep -q '"by":"alice"' || fail "the re-sync removed the approval"
}

s39_webhook_signing_oracle() {
  # The webhook's TLS asks no client certificate: anything that reaches its port (any pod in
  # the cluster: there is no NetworkPolicy) can POST an AdmissionReview with any userInfo and
  # get back records signed with the operator's key. Carol (on-call, not an approver) asks it
  # for an approval "by alice" of rita's request.
  canary_request oracle | as rita apply -f -
  eventually 30 decided oracle
  k get promotionrequest oracle -o json >"$E2E/oracle.json"
  python3 - "$E2E/oracle.json" >"$E2E/oracle-review.json" <<'PY'
import json, sys
old = json.load(open(sys.argv[1]))
new = json.loads(json.dumps(old))
new["metadata"]["annotations"]["janus.torghut.io/approve"] = "true"
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
  "uid": "forged-1", "kind": {"group": "janus.torghut.io", "version": "v1alpha1", "kind": "PromotionRequest"},
  "name": old["metadata"]["name"], "namespace": old["metadata"]["namespace"], "operation": "UPDATE",
  "userInfo": {"username": "alice", "groups": ["janus-approvers", "system:authenticated"]},
  "object": new, "oldObject": old}}))
PY
  # The webhook asks for the API server's client certificate (--webhook-client-ca): a POST
  # without one is refused in the TLS handshake (curl exits 35 or 56), before any request is read.
  local rc=0
  curl -sS -o /dev/null --cacert "$WH/ca.crt" -H 'Content-Type: application/json' -X POST \
    --data-binary @"$E2E/oracle-review.json" "https://127.0.0.1:$WH_PORT/mutate" || rc=$?
  echo "a POST without the API server's client certificate: curl exit $rc"
  [ "$rc" = 35 ] || [ "$rc" = 56 ] || fail "the webhook answered a client without a certificate (curl exit $rc)"
  # A certificate from another CA is refused the same way.
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=not-the-api-server" \
    -keyout "$E2E/other-client.key" -out "$E2E/other-client.crt" 2>/dev/null
  rc=0
  curl -sS -o /dev/null --cacert "$WH/ca.crt" --cert "$E2E/other-client.crt" --key "$E2E/other-client.key" \
    -X POST --data-binary @"$E2E/oracle-review.json" "https://127.0.0.1:$WH_PORT/mutate" || rc=$?
  echo "a POST with a certificate of another CA: curl exit $rc"
  [ "$rc" = 35 ] || [ "$rc" = 56 ] || fail "the webhook answered a client with a foreign certificate (curl exit $rc)"
  local forged=""
  forged="$(curl -sS --cacert "$WH/ca.crt" -H 'Content-Type: application/json' -X POST \
      --data-binary @"$E2E/oracle-review.json" "https://127.0.0.1:$WH_PORT/mutate" 2>/dev/null |
    python3 -c '
import base64, json, sys
r = json.load(sys.stdin)["response"]
for op in json.loads(base64.b64decode(r.get("patch") or "W10=")):
    if op["path"].endswith("janus.torghut.io~1approval"):
        print(op["value"])' 2>/dev/null || true)"
  [ -n "$forged" ] || { echo "the webhook signed nothing for an unauthenticated caller"; return 0; }
  echo "signed for an unauthenticated caller: $forged"
  # What it buys: carol puts it on with the webhook down, and the operator believes alice.
  webhook_down as carol annotate --overwrite promotionrequest oracle "janus.torghut.io/approval=$forged"
  poke oracle
  sleep 5
  local approved
  approved="$(jp promotionrequest/oracle '{.status.conditions[?(@.type=="Approved")].status}')"
  fail "the webhook signed an approval 'by alice' for an unauthenticated POST; put on by carol with the webhook down, the request is Approved=$approved"
}

s40_huge_ask_breaks_the_audit_chain() {
  # An approver's ask with a 100 KiB value is refused; the refusal's audit line quotes it, and
  # every later append chains to GENESIS: the untampered trail no longer verifies.
  local log="$ART/audit/$NS.jsonl"
  canary_request huge-ask | as rita apply -f -
  eventually 30 decided huge-ask
  janus audit verify "$log" || fail "the trail did not verify before"
  python3 -c 'import json; print(json.dumps({"metadata": {"annotations": {"janus.torghut.io/approve": "x" * 100000}}}))' >"$E2E/huge-ask.json"
  if as alice patch promotionrequest huge-ask --type merge --patch-file "$E2E/huge-ask.json" >/dev/null 2>&1; then
    fail "the huge ask was allowed"
  fi
  sleep 1
  as alice annotate promotionrequest huge-ask janus.torghut.io/approve=true
  sleep 1
  janus audit verify "$log" || fail "an untampered trail no longer verifies after a refusal with a long reason"
}

s41_approval_without_model() {
  # A canary request for a candidate that does not exist yet: the webhook cannot read its model,
  # and stamps the approval bound to no model digest.
  cat <<YAML | as rita apply -f -
apiVersion: janus.torghut.io/v1alpha1
kind: PromotionRequest
metadata: {name: future-canary}
spec:
  candidate: future-candidate
  target: canary
  canary: {symbols: ["600000.SH"], maxOrderNotional: 100000, maxGrossNotional: 1000000, maxNetNotional: 250000}
YAML
  eventually 30 decided future-canary
  if as alice annotate promotionrequest future-canary janus.torghut.io/approve=true; then
    local rec
    rec="$(jp promotionrequest/future-canary '{.metadata.annotations.janus\.torghut\.io/approval}')"
    echo "stamped: $rec"
    grep -q '"modelSha256"' <<<"$rec" || fail "an approval was stamped bound to no model digest (the candidate does not exist yet): it will count for whatever model future-candidate names"
  fi
}

s42_audit_outage_loses_transitions() {
  # Needs scenario 2: r1-paper promoted. The audit folder unwritable for a moment (a full or
  # read-only volume): the kill switch must still halt (it does), and once the folder is back
  # the halt must reach the trail — today the entry is dropped for good and the chain verifies.
  [ "$(phase r1-paper)" = Promoted ] || fail "r1-paper is not promoted (run scenario 2 first)"
  local log="$ART/audit/$NS.jsonl"
  mv "$ART/audit" "$ART/audit.saved"
  touch "$ART/audit"   # a file where the folder should be: every append fails
  as carol patch promotionrequest r1-paper --type merge -p '{"spec":{"killSwitch":true}}'
  k wait promotionrequest/r1-paper --for=jsonpath='{.status.phase}'=Halted --timeout=30s
  sleep 2
  rm "$ART/audit"
  mv "$ART/audit.saved" "$ART/audit"
  poke r1-paper
  sleep 5
  janus audit verify "$log"
  grep '"request":"r1-paper"' "$log" | grep -q '"phase":"Halted"' ||
    fail "the halt of r1-paper during the audit outage never reached the trail, and the trail still verifies"
}

s43_rotated_key_halts_promoted() {
  # Needs scenario 2: r1-paper promoted. docs/gitops.md: "a rotated signing key voids every
  # approval and drill on record, which blocks canaries until they are recorded again" — the
  # chart regenerates the key on every Argo CD sync unless ignoreDifferences is set. Nothing
  # says it stops what is trading: r1-paper (paper needs no approval) must stay promoted.
  [ "$(phase r1-paper)" = Promoted ] || fail "r1-paper is not promoted (run scenario 2 first)"
  # The documented rotation (docs/gitops.md): the new key first, the old one kept below it.
  { openssl rand -hex 32; cat "$E2E/signing.key"; } >"$E2E/signing.key.new"
  mv "$E2E/signing.key.new" "$E2E/signing.key"
  local old
  old="$(leader)"
  kill "$(cat "$E2E/pid-$old")"
  start_operator op-rotated
  wait_leader op-rotated || fail "op-rotated never led"
  poke r1-paper
  sleep 5
  echo "after the key rotation: $(phase r1-paper): $(last_reason r1-paper)"
  [ "$(phase r1-paper)" = Promoted ] || fail "rotating the signing key halted a promoted paper request: $(last_reason r1-paper)"
}
