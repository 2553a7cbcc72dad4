#!/usr/bin/env bash
# inferplane bootstrap, harmless flavour: every phase is announced and prints what it would do,
# nothing is installed, except the agent binary and its environment (checked as on a real VM).
# For tests and for trying the SSH path against a machine that is not a GPU VM.
{{>header}}
SLEEP_SECS={{SLEEP_SECS}}
FAIL_PHASE={{FAIL_PHASE}}

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
{{>agent_install}}

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
