#!/usr/bin/env bash
# inferplane bootstrap of a GPU worker: vLLM multi mode. Rendered by the control plane;
# safe to run again (a reinstall does).
# shellcheck disable=SC2034 # the header sets every value; each flavour uses some of them
set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive

MODEL='meta-llama/Llama-3.1-8B-Instruct'
GPU_COUNT='2'
VLLM_IMAGE='vllm/vllm-openai:v0.11.0'
HAPROXY_IMAGE='haproxy:3.2'
ENGINE_PORT='8000'
FIRST_BACKEND_PORT='8001'
SESSION_HEADER='X-Session-Id'
DATA_VOLUME_GB='100'
DATA_DIR='/mnt/inferplane-data'
CONFIG_DIR='/etc/inferplane'
WORK_DIR='/var/lib/inferplane'
AGENT_BIN='/usr/local/bin/inferplane'
AGENT_STAGED='/var/lib/inferplane/inferplane.upload'
AGENT_SHA256='0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'
AGENT_ENV_FILE="$CONFIG_DIR/agent.env"
HF_ENV_FILE="$CONFIG_DIR/hf.env"
PID_FILE="$WORK_DIR/bootstrap.pid"

# The control plane reads these markers on stdout: everything after one belongs to that phase.
phase() { echo "::phase::$1"; }

# A previous run still going (a timed-out attempt, whose connection was dropped) is stopped
# first: two runs must not race on the same containers. Runs are session leaders (setsid), so
# the whole process group goes.
stop_previous_run() {
  local old
  old="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [ -n "$old" ] && [ "$old" != "$$" ] && kill -0 "$old" 2>/dev/null; then
    echo "stopping the previous bootstrap run (pid $old)"
    kill -TERM -- "-$old" 2>/dev/null || kill -TERM "$old" 2>/dev/null || true
    sleep 1
  fi
  mkdir -p "$WORK_DIR"
  echo "$$" > "$PID_FILE"
}

phase start
stop_previous_run
echo "bootstrap of $MODEL on $(hostname) with $GPU_COUNT GPU(s), vLLM multi mode"

phase mount_data_volume
if mountpoint -q "$DATA_DIR"; then
  echo "data volume already mounted at $DATA_DIR"
else
  # Candidates: whole disks with no partition and nothing mounted. The data volume is the one
  # of the requested size (GPU types with local scratch disks have other candidates); a lone
  # candidate is taken whatever its size.
  disk=""
  candidates=()
  for d in $(lsblk -dnpo NAME,TYPE | awk '$2 == "disk" { print $1 }'); do
    if [ "$(lsblk -npo NAME "$d" | wc -l)" -eq 1 ] && [ -z "$(lsblk -npo MOUNTPOINT "$d" | tr -d '[:space:]')" ]; then
      candidates+=("$d")
      if [ "$(lsblk -dnbo SIZE "$d")" -eq $((DATA_VOLUME_GB * 1000000000)) ]; then
        disk="$d"
      fi
    fi
  done
  if [ -z "$disk" ] && [ "${#candidates[@]}" -eq 1 ]; then
    disk="${candidates[0]}"
  fi
  if [ -z "$disk" ]; then
    echo "no unmounted data disk of $DATA_VOLUME_GB GB found (candidates: ${candidates[*]:-none})" >&2
    exit 1
  fi
  if ! blkid "$disk" >/dev/null 2>&1; then
    echo "formatting $disk (ext4)"
    mkfs.ext4 -q -L inferplane-data "$disk"
  fi
  mkdir -p "$DATA_DIR"
  mount "$disk" "$DATA_DIR"
  uuid="$(blkid -s UUID -o value "$disk")"
  grep -q "UUID=$uuid" /etc/fstab || echo "UUID=$uuid $DATA_DIR ext4 defaults,nofail 0 2" >> /etc/fstab
  echo "mounted $disk at $DATA_DIR"
fi
mkdir -p "$DATA_DIR/docker" "$DATA_DIR/huggingface" "$DATA_DIR/worker"

phase docker_install
if command -v docker >/dev/null 2>&1; then
  echo "docker already installed: $(docker --version)"
else
  apt-get update -q
  apt-get install -y -q docker.io
fi

phase docker_start
# Images and containers live on the data volume, not on the small root disk.
mkdir -p /etc/docker
python3 - "$DATA_DIR/docker" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) > 0 else {}
if config.get("data-root") != sys.argv[1]:
    config["data-root"] = sys.argv[1]
    json.dump(config, open(path, "w"), indent=2)
    open("/run/inferplane-docker-changed", "w").close()
PY
if [ -e /run/inferplane-docker-changed ]; then
  rm -f /run/inferplane-docker-changed
  systemctl restart docker
fi
systemctl enable --now docker
docker info --format 'docker root dir: {{.DockerRootDir}}'

phase nvidia_toolkit
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L
  found="$(nvidia-smi -L | grep -c '^GPU ')"
  if [ "$found" -lt "$GPU_COUNT" ]; then
    echo "expected $GPU_COUNT GPU(s), found $found" >&2
    exit 1
  fi
  if ! command -v nvidia-ctk >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q nvidia-container-toolkit
  fi
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
else
  echo "nvidia-smi not found: no GPU toolkit to configure" >&2
  exit 1
fi

phase agent_install
# The agent binary was uploaded over SFTP to $AGENT_STAGED; it is installed only if its
# SHA-256 on this machine is the one the control plane computed before sending it.
actual="$(sha256sum "$AGENT_STAGED" | cut -d' ' -f1)"
if [ "$actual" != "$AGENT_SHA256" ]; then
  echo "agent binary checksum mismatch: expected $AGENT_SHA256, found $actual" >&2
  exit 1
fi
echo "agent binary checksum verified: $actual"
mkdir -p "$(dirname "$AGENT_BIN")"
install -m 0755 "$AGENT_STAGED" "$AGENT_BIN.new"
mv -f "$AGENT_BIN.new" "$AGENT_BIN"
# Written by the control plane before the script ran; secrets inside, root only.
test -f "$AGENT_ENV_FILE" || { echo "missing $AGENT_ENV_FILE" >&2; exit 1; }
chmod 0600 "$AGENT_ENV_FILE" "$HF_ENV_FILE"
echo "agent installed at $AGENT_BIN"

phase docker_pull
docker pull "$VLLM_IMAGE"
docker pull "$HAPROXY_IMAGE"

phase vllm_start
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

phase agent_start
cat > /etc/systemd/system/inferplane-agent.service <<UNIT
[Unit]
Description=inferplane worker agent
After=network-online.target docker.service

[Service]
EnvironmentFile=$AGENT_ENV_FILE
ExecStart=$AGENT_BIN worker agent
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable inferplane-agent
systemctl restart inferplane-agent
echo "agent started"

# shellcheck disable=SC1010 # "done" is the name of the last phase here
phase done
echo "bootstrap complete"
