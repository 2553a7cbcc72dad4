#!/usr/bin/env bash
# inferplane bootstrap, harmless flavour: every phase is announced and prints what it would do,
# nothing is installed, except the agent binary and its environment (checked as on a real VM).
# For tests and for trying the SSH path against a machine that is not a GPU VM.
# shellcheck disable=SC2034 # the header sets every value; each flavour uses some of them
set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive

MODEL='meta-llama/Llama-3.1-8B-Instruct'
GPU_COUNT='1'
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
SLEEP_SECS='2'
FAIL_PHASE=''

# Announces a phase; fails it (exit 3) when it is the one asked to fail.
step() {
  phase "$1"
  if [ "$FAIL_PHASE" = "$1" ]; then
    echo "phase $1 fails as asked" >&2
    exit 3
  fi
}

step start
stop_previous_run
echo "harmless bootstrap of $MODEL with $GPU_COUNT GPU(s)"

step mount_data_volume
mkdir -p "$DATA_DIR"
echo "data directory $DATA_DIR"

step docker_install
echo "would install docker"

step docker_start
echo "would start docker"

step nvidia_toolkit
echo "would configure the NVIDIA container toolkit"

step agent_install
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

step docker_pull
echo "pulling $VLLM_IMAGE (simulated, $SLEEP_SECS s)"
sleep "$SLEEP_SECS"
echo "pulled"

step vllm_start
echo "would start vLLM on port $ENGINE_PORT"

step agent_start
test "$(stat -c %a "$AGENT_ENV_FILE")" = 600 || { echo "$AGENT_ENV_FILE is not mode 0600" >&2; exit 1; }
echo "agent environment: $(cut -d= -f1 "$AGENT_ENV_FILE" | tr '\n' ' ')"

# shellcheck disable=SC1010 # "done" is the name of the last phase here
step done
echo "bootstrap complete"
