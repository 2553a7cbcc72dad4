#!/usr/bin/env bash
# inferplane bootstrap of a GPU worker: vLLM {{>mode}} mode. Rendered by the control plane;
# safe to run again (a reinstall does).
{{>header}}

phase start
stop_previous_run
echo "bootstrap of $MODEL on $(hostname) with $GPU_COUNT GPU(s), vLLM {{>mode}} mode"

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
{{>agent_install}}

phase docker_pull
{{>docker_pull}}

phase vllm_start
{{>vllm_start}}

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
