# Multi: one vLLM per GPU on ports FIRST_BACKEND_PORT.., behind HAProxy on the engine port,
# sticky on the session header, each backend health-checked on /v1/models.
docker rm -f inferplane-haproxy >/dev/null 2>&1 || true
{
  cat <<CFG
global
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client 30m
  timeout server 30m

frontend vllm
  bind *:$ENGINE_PORT
  default_backend vllm

backend vllm
  balance roundrobin
  stick-table type string len 128 size 100k expire 30m
  stick on req.hdr($SESSION_HEADER)
  option httpchk GET /v1/models
  http-check expect status 200
CFG
  for i in $(seq 0 $((GPU_COUNT - 1))); do
    echo "  server vllm$i 127.0.0.1:$((FIRST_BACKEND_PORT + i)) check inter 5s"
  done
} > "$CONFIG_DIR/haproxy.cfg"
for i in $(seq 0 $((GPU_COUNT - 1))); do
  port=$((FIRST_BACKEND_PORT + i))
  docker rm -f "inferplane-vllm-$i" >/dev/null 2>&1 || true
  docker run -d --name "inferplane-vllm-$i" --restart unless-stopped \
    --gpus "device=$i" --ipc=host \
    --env-file "$HF_ENV_FILE" \
    -v "$DATA_DIR/huggingface:/root/.cache/huggingface" \
    -p "127.0.0.1:$port:8000" \
    "$VLLM_IMAGE" --model "$MODEL" --served-model-name "$MODEL"
  echo "vLLM $i started on port $port"
done
docker run -d --name inferplane-haproxy --restart unless-stopped --network host \
  -v "$CONFIG_DIR/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" \
  "$HAPROXY_IMAGE"
echo "HAProxy on port $ENGINE_PORT in front of $GPU_COUNT vLLM(s), sticky on $SESSION_HEADER"
